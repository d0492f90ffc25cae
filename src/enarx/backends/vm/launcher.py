"""Start and supervise a VM keep: one QEMU process per keep, which never outlives it.

The host creates a socketpair and passes one end to QEMU as the virtio-serial port's chardev; the other
end is the keep's channel, used by the supervisor exactly as for a process keep. QEMU runs in its own
session (a Ctrl-C on the terminal reaches the supervisor, which asks the keep to stop, not QEMU) and with
``PR_SET_PDEATHSIG`` (if the host dies, even by SIGKILL, the kernel kills QEMU). A guest that has not
started its workload within the boot timeout is killed and reported with its console's last lines.
"""

from __future__ import annotations

import collections
import ctypes
import signal
import socket
import subprocess
import threading
import uuid

from enarx.backends.base import Attachments, KeepProcess
from enarx.protocol import LaunchRequest

PR_SET_PDEATHSIG = 1
POWER_OFF_GRACE = 10.0  # after EXIT, the guest powers itself off; QEMU is killed if it has not ended by then
CONSOLE_LINES = 40


_LIBC = ctypes.CDLL(None, use_errno=True)
_SIGKILL = int(signal.SIGKILL)


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: no imports, no locks (another thread may have held one at
    the fork), only the prctl call, resolved beforehand."""
    _LIBC.prctl(PR_SET_PDEATHSIG, _SIGKILL, 0, 0, 0)


class VmKeep(KeepProcess):
    """A running QEMU keep as the host sees it. ``argv_for(fd)`` builds the command line around the fd
    number the channel gets in QEMU; ``frames`` is what the host sends after starting it."""

    def __init__(self, argv_for, *, request: LaunchRequest, module: bytes, attachments: Attachments,
                 boot_timeout: float, started_view=None, label: str = "kvm", on_exit=None):
        host_end, guest_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.channel = host_end
        self.name = f"enarx-keep-{uuid.uuid4().hex[:12]}"
        self.label = label
        self._frames = (request, module, attachments)
        self._started_view = started_view
        self._console: collections.deque[str] = collections.deque(maxlen=CONSOLE_LINES)
        self._boot_timed_out = False
        self._started = threading.Event()
        self._on_exit = on_exit  # ends what the keep's QEMU needed beside it (shared-directory daemons)
        try:
            argv = argv_for(guest_end.fileno(), self.name)
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, pass_fds=[guest_end.fileno()],
                                         start_new_session=True,
                                         preexec_fn=_die_with_parent)  # noqa: PLW1509 - only prctl, no locks
        except BaseException:
            self._helpers_done()
            raise
        finally:
            guest_end.close()
        self._reader = threading.Thread(target=self._read_console, name="vm-console", daemon=True)
        self._reader.start()
        self._timer = threading.Timer(boot_timeout, self._boot_timeout, args=(boot_timeout,))
        self._timer.daemon = True
        self._timer.start()
        self.boot_timeout = boot_timeout

    # -- console ------------------------------------------------------------------------------------
    def _read_console(self) -> None:
        import logging

        log = logging.getLogger("enarx.vm")
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                self._console.append(line)
                log.debug("%s: %s", self.name, line)

    def console(self) -> list[str]:
        return list(self._console)

    def last_words(self) -> str | None:
        """The console's most telling line: the last one the guest's runtime wrote (an exception), else the
        kernel's last ("Kernel panic - …")."""
        lines = [line for line in self._console if line.strip()]
        own = [line for line in lines if not line.startswith("[")]
        return (own or lines or [None])[-1]

    # -- KeepProcess --------------------------------------------------------------------------------
    def launch_frames(self, request: LaunchRequest, module: bytes) -> tuple[LaunchRequest, bytes, Attachments]:
        return self._frames

    def started(self, info: dict) -> dict:
        self._started.set()
        self._timer.cancel()
        if self._started_view is not None:
            info = {**info, "listening": self._started_view(info.get("listening", []))}
        return info

    def wait(self) -> int:
        """The QEMU process's waitpid-style status; QEMU is killed if it lingers after its keep ended."""
        try:
            code = self.proc.wait(timeout=POWER_OFF_GRACE)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.proc.wait()
        self._timer.cancel()
        self._reader.join(timeout=2)
        self._helpers_done()
        return (-code) & 0x7F if code < 0 else (code & 0xFF) << 8

    def _helpers_done(self) -> None:
        on_exit, self._on_exit = self._on_exit, None
        if on_exit is not None:
            on_exit()

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass

    def _boot_timeout(self, seconds: float) -> None:
        if not self._started.is_set() and self.proc.poll() is None:
            self._boot_timed_out = True
            self.kill()

    def crash_report(self) -> str | None:
        said = f"; its console said: {self.last_words()!r}" if self.last_words() else ""
        if self._boot_timed_out:
            return f"keep did not start within {self.boot_timeout:g} s and was stopped{said}"
        code = self.proc.poll()
        if code is not None and code < 0:
            return f"keep crashed: its virtual machine was killed by {signal.Signals(-code).name}{said}"
        return f"keep crashed: its virtual machine stopped without reporting an exit status{said}"

    def __del__(self) -> None:  # a keep object dropped without wait(): never leave QEMU behind
        proc = getattr(self, "proc", None)
        if proc is not None and proc.poll() is None:
            proc.kill()
        if getattr(self, "_on_exit", None) is not None:
            self._helpers_done()

