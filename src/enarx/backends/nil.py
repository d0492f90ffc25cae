"""The nil backend: the keep is a child process of the host. No TEE, no protection from the host.

The child is forked from the CLI process (no second interpreter start-up) and imports wasmtime itself.
It speaks to the host only through the protocol channel: its stdin and stdout are /dev/null.
"""

from __future__ import annotations

import os
import signal
import socket

from enarx.backends.base import Backend, KeepProcess, Probe


class ForkedKeep(KeepProcess):
    def __init__(self, pid: int, channel: socket.socket):
        self.pid = pid
        self.channel = channel
        self._status: int | None = None

    def wait(self) -> int:
        if self._status is None:
            _, self._status = os.waitpid(self.pid, 0)
        return self._status

    def kill(self) -> None:
        if self._status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class NilBackend(Backend):
    name = "nil"
    description = "a child process (development only)"
    protects = "nothing: the host can read and change the workload, its data and its memory"

    def data_probes(self) -> list[Probe]:
        return []

    def launch(self) -> KeepProcess:
        host_end, keep_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:  # the keep
            status = 70
            try:
                host_end.close()
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # the host decides how to stop us
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                devnull = os.open(os.devnull, os.O_RDWR)
                os.dup2(devnull, 0)
                os.dup2(devnull, 1)
                os.close(devnull)
                from enarx.runtime.keep import serve

                serve(keep_end)
            finally:
                os._exit(status)
        keep_end.close()
        return ForkedKeep(pid, host_end)
