"""The backend interface, and the probe rows shown by ``enarx platform info``."""

from __future__ import annotations

import abc
import socket


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

    @abc.abstractmethod
    def launch(self) -> KeepProcess:
        """Start an empty keep whose runtime waits for a LAUNCH frame on ``channel``."""


def _all_passed(probe: Probe) -> bool:
    return probe.passed and all(_all_passed(c) for c in probe.children)
