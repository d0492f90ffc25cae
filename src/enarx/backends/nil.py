"""The nil backend: the keep is a child process of the host. No TEE, no protection from the host.

The child is forked from the CLI process (no second interpreter start-up) and imports wasmtime itself.
It speaks to the host only through the protocol channel: its stdin and stdout are /dev/null.
"""

from __future__ import annotations

from enarx.backends.base import Backend, KeepProcess, Probe
from enarx.isolation import PROCESS
from enarx.runtime.process import ForkedKeep, fork_keep, take_preforked

KeepProcess.register(ForkedKeep)  # ForkedKeep stays free of imports: it is forked before anything loads


class NilBackend(Backend):
    name = "nil"
    description = "a child process (development only)"
    protects = "nothing: the host can read and change the workload, its data and its memory"
    isolation = PROCESS

    def data_probes(self) -> list[Probe]:
        return []

    def launch(self, request=None, module=b"") -> KeepProcess:
        return take_preforked() or fork_keep(preload=False)
