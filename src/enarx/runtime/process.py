"""Keeps as local processes: fork a child that runs the keep runtime on one end of a socketpair.

Kept free of heavy imports so that ``enarx.cli.entry`` can fork the keep before anything else loads.
"""

from __future__ import annotations

import os
import signal
import socket
import sys

PR_SET_PDEATHSIG = 1


class ForkedKeep:
    """A keep in a forked child process (registered as a :class:`~enarx.backends.base.KeepProcess`)."""

    def __init__(self, pid: int, channel: socket.socket):
        self.pid = pid
        self.channel = channel
        self._status: int | None = None

    def wait(self) -> int:
        if self._status is None:
            _, self._status = os.waitpid(self.pid, 0)
        return self._status

    def alive(self) -> bool:
        if self._status is not None:
            return False
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        if pid == 0:
            return True
        self._status = status
        return False

    def kill(self) -> None:
        if self._status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


_preforked: ForkedKeep | None = None


def prefork() -> None:
    """Start a keep now, for the next nil-backend launch (see ``enarx.cli.entry``).

    Modules that both the host and the keep need are imported first, so the fork shares them instead of
    each process loading them again (on a busy machine, total CPU time is what start-up costs).
    """
    global _preforked
    if _preforked is None:
        import enarx.config
        import enarx.protocol  # noqa: F401

        _preforked = fork_keep(preload=True)


def fork_keep(*, preload: bool) -> ForkedKeep:
    # A process that has loaded wasmtime may have started its thread pools (compilation, WASI I/O): a
    # forked child inherits their state without their threads and would wait forever on them. Such a
    # process (an API user, a test process) gets a keep in a fresh interpreter instead.
    fresh = "wasmtime" in sys.modules
    host_end, keep_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:  # the keep
        status = 70
        try:
            host_end.close()
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # the host decides how to stop us
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            _die_with_parent()
            devnull = os.open(os.devnull, os.O_RDWR)
            os.dup2(devnull, 0)
            os.dup2(devnull, 1)
            os.close(devnull)
            if fresh:
                os.set_inheritable(keep_end.fileno(), True)
                os.environ["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
                os.execv(sys.executable, [sys.executable, "-c", _SERVE_FD, str(keep_end.fileno())])
            if preload:  # load the runtime while the host is still parsing its options
                import enarx.runtime.engine

                enarx.runtime.engine.make_engine()
            from enarx.runtime.keep import serve

            serve(keep_end)
        finally:
            os._exit(status)
    keep_end.close()
    return ForkedKeep(pid, host_end)


_SERVE_FD = "import socket, sys; from enarx.runtime.keep import serve; serve(socket.socket(fileno=int(sys.argv[1])))"


def _die_with_parent() -> None:
    """A keep whose host vanished (even by SIGKILL) must not live on: ask Linux to kill it too."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the keep still ends when its channel closes
    if os.getppid() == 1:
        os._exit(1)


def take_preforked() -> ForkedKeep | None:
    """The keep started by :func:`prefork`, if it is still alive (each one is handed out once)."""
    global _preforked
    keep, _preforked = _preforked, None
    if keep is not None and keep.alive():
        return keep
    return None
