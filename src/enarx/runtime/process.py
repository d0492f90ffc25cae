"""Keeps as local processes: fork a child that runs the keep runtime on one end of a socketpair.

Kept free of heavy imports so that ``enarx.cli.entry`` can fork the keep before anything else loads.
"""

from __future__ import annotations

import os
import signal
import socket
import sys

TYPE_CHECKING = False  # typing itself is not imported before the fork
if TYPE_CHECKING:
    from collections.abc import Callable

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


def prefork(*, engine: bool = True, warm: Callable[[], None] | None = None) -> None:
    """Start a keep now, for the next nil-backend launch (see ``enarx.cli.entry``): it makes the wasmtime
    engine (``engine``) and runs ``warm`` while the host is still busy, then waits for its launch.

    Modules that both the host and the keep need are imported first, so the fork shares them instead of
    each process loading them again (on a busy machine, total CPU time is what start-up costs).
    """
    global _preforked
    if _preforked is None:
        import enarx.config
        import enarx.protocol  # noqa: F401

        _preforked = fork_keep(preload=engine, warm=warm)


def fork_keep(*, preload: bool, warm: Callable[[], None] | None = None) -> ForkedKeep:
    host_end, keep_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    if "wasmtime" in sys.modules:
        # This process has loaded wasmtime itself (an embedding program, an in-memory keep): a forked
        # copy would inherit wasmtime's runtime with none of its threads, and hang on its first stdin
        # read. Start a fresh interpreter instead (it costs an interpreter start-up).
        pid = _spawn_keep(keep_end)
        keep_end.close()
        return ForkedKeep(pid, host_end)
    pid = os.fork()
    if pid == 0:  # the keep
        status = 70
        try:
            host_end.close()
            _run_keep(keep_end, preload=preload, warm=warm)
        finally:
            os._exit(status)
    keep_end.close()
    return ForkedKeep(pid, host_end)


def _run_keep(keep_end: socket.socket, *, preload: bool, warm: Callable[[], None] | None = None) -> None:
    """The keep process's life: detach from the host's signals and stdio, then serve the channel."""
    # The host decides how to stop us: Ctrl-C and SIGTERM sent to the whole process group (a terminal,
    # timeout(1), `kill -- -PGID`) or to every process of a systemd unit reach the host, which asks us to
    # stop, so the run ends with 130/143 rather than as a crashed keep.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with_parent()
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    if preload:  # load the runtime while the host is still parsing its options
        import enarx.runtime.engine

        enarx.runtime.engine.make_engine()
    if warm is not None:
        warm()
    from enarx.runtime.keep import serve

    serve(keep_end)


def _spawn_keep(keep_end: socket.socket) -> int:
    """A keep in a new interpreter, given ``keep_end`` as an inherited file descriptor."""
    import enarx

    keep_end.set_inheritable(True)
    code = f"from enarx.runtime.process import spawned; spawned({keep_end.fileno()})"
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(enarx.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
    return os.posix_spawn(sys.executable, [sys.executable, "-c", code], env)


def spawned(fd: int) -> None:
    """Entry point of a spawned keep (see :func:`fork_keep`)."""
    status = 70
    try:
        keep_end = socket.socket(fileno=fd)
        keep_end.set_inheritable(False)
        _run_keep(keep_end, preload=False)
    finally:
        os._exit(status)


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
