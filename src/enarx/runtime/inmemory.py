"""An in-memory keep: the real keep runtime in a thread of this process, on one end of a socketpair.

Like httpx's ``MockTransport``, it lets the host side (the :class:`~enarx.host.supervisor.Supervisor`) and
the keep runtime talk the real protocol over a real channel without a subprocess, so both are tested fast
and in-process. It differs from a process keep in one way only: a thread cannot be killed, so after a STOP
or a timeout the keep reports and closes its channel at once, but a workload that never returns keeps its
thread busy (a daemon thread) until the test process ends. Use a process keep to test runaway loops.
"""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Callable, Sequence

from enarx.backends.base import KeepProcess
from enarx.runtime.keep import Keep
from enarx.runtime.launch import Launch

CRASH_STATUS = 70  # like a process keep whose runtime raised: EX_SOFTWARE


class InMemoryKeep(KeepProcess):
    """A :class:`KeepProcess` whose keep runs in a thread; ``stages`` replaces the keep's set-up stages."""

    def __init__(self, stages: Sequence[Callable[[Launch], None]] | None = None):
        host_end, keep_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.channel = host_end
        self._keep_end = keep_end
        self._ended = threading.Event()
        self._status: int | None = None  # waitpid-style
        self.error: BaseException | None = None  # what the keep runtime raised, if it crashed
        self.keep = Keep(keep_end, stages=stages, exit=self._exit, capture_logs=False)
        self._thread = threading.Thread(target=self._serve, name="in-memory-keep", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            self.keep.serve()
        except SystemExit:
            pass
        except BaseException as exc:  # noqa: BLE001 - a runtime bug: reported to the host as a crash
            self.error = exc
            self._end(CRASH_STATUS << 8)
        finally:
            if not self._ended.is_set():  # serve() returned without ending the keep: a runtime bug
                self._end(CRASH_STATUS << 8)
            self._close_keep_end()

    def _exit(self, status: int) -> None:
        """The keep's ``exit``: record the status and close the keep's end. In the keep's main thread it
        also unwinds (``exit`` must not return to the stages); the control and timer threads just return."""
        self._end((status & 0xFF) << 8)
        self._close_keep_end()
        if threading.current_thread() is self._thread:
            raise SystemExit(status)

    def _end(self, status: int) -> None:
        if self._status is None:
            self._status = status
        self._ended.set()

    def _close_keep_end(self) -> None:
        try:
            self._keep_end.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # -- KeepProcess --------------------------------------------------------------------------------
    def wait(self) -> int:
        self._ended.wait()
        assert self._status is not None
        return self._status

    def kill(self) -> None:
        """Cut the keep off: its channel is shut down and it counts as killed by SIGKILL."""
        self._end(int(signal.SIGKILL))
        self._close_keep_end()
