"""The backend interface, and the probe rows shown by ``enarx platform info``."""

from __future__ import annotations

import abc
import socket

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: importing typing costs start-up time
if TYPE_CHECKING:
    from enarx.protocol import LaunchRequest

#: (kind, bytes) parts sent in ATTACH frames right after LAUNCH
Attachments = list[tuple[str, bytes]]


class Probe:
    """One availability check. ``info`` is a measured value, ``mesg`` a remedy shown when it fails."""

    def __init__(self, name: str, passed: bool, info: str | None = None, mesg: str | None = None,
                 children: list[Probe] | None = None):
        self.name = name
        self.passed = passed
        self.info = info
        self.mesg = mesg
        self.children: list[Probe] = children or []


class KeepProcess(abc.ABC):
    """A running keep as the host sees it: a channel plus process control."""

    channel: socket.socket

    @abc.abstractmethod
    def wait(self) -> int:
        """Wait for the keep to end; a ``waitpid``-style status (``os.waitstatus_to_exitcode`` applies)."""

    @abc.abstractmethod
    def kill(self) -> None:
        """End the keep at once (used when it does not honour a stop request)."""

    def launch_frames(self, request: LaunchRequest, module: bytes) -> tuple[LaunchRequest, bytes, Attachments]:
        """What the host sends this keep: a VM keep adds its network and the host files the package names."""
        return request, module, []

    def started(self, info: dict) -> dict:
        """STARTED as the user should see it (a VM keep reports the host's forwarded ports)."""
        return info

    def crash_report(self) -> str | None:
        """Why the keep ended without an EXIT frame, when the keep knows better than its exit status."""
        return None


class Backend(abc.ABC):
    """A kind of keep. ``data_probes`` decide availability; ``config_probes`` decide configuration."""

    name: str
    description: str
    #: What this backend protects, shown by ``platform info`` and the README.
    protects: str

    @abc.abstractmethod
    def data_probes(self) -> list[Probe]: ...

    def config_probes(self) -> list[Probe]:
        return []

    def have(self) -> bool:
        return all(_all_passed(p) for p in self.data_probes())

    def configured(self) -> bool:
        return all(_all_passed(p) for p in self.config_probes())

    #: Whether ``enarx run`` may pick this backend by itself when it is available.
    auto_select: bool = True

    #: For a keep that is not isolated at all (nil: a process; kvm under TCG: emulated), the label its host
    #: declares in the keep's CSR, so that the certificate the Steward issues says so (see
    #: :mod:`enarx.isolation`); ``None`` for a keep the hardware isolates.
    isolation: str | None = None

    @abc.abstractmethod
    def launch(self, request: LaunchRequest, module: bytes) -> KeepProcess:
        """Start a keep for ``request`` whose runtime waits for its LAUNCH frame on ``channel``.

        Process keeps ignore the request (the nil keep was forked before it existed); a VM keep needs it to
        size and wire the machine (memory, forwarded ports, reachable hosts)."""


HOST_VISIBLE = "NOT stdio, dir preopens or plain tcp traffic, which pass through the host"


def cpu_rows(vendor_name: str, *flag_rows: tuple[str, str]) -> list[Probe]:
    """A "CPU vendor" row with one child row per required CPU flag (from /proc/cpuinfo)."""
    from enarx.backends import probes

    vendor = probes.vendor()
    flags = probes.cpu_flags()
    cpu = Probe(f"CPU vendor {vendor_name}", vendor == vendor_name, info=vendor)
    cpu.children = [Probe(f"  {label}", flag in flags) for label, flag in flag_rows]
    return [cpu]


def _all_passed(probe: Probe) -> bool:
    return probe.passed and all(_all_passed(c) for c in probe.children)
