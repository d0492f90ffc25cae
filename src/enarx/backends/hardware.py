"""The enclave backend: sgx. Its availability checks are real and follow Enarx's (``platform info``).

Launching SGX keeps is not part of this release: a "keep launcher" check fails with that message, so
backend auto-selection falls back to another backend instead of picking one that cannot start. The VM
backends (kvm, sev, tdx) are in :mod:`enarx.backends.vm`.
"""

from __future__ import annotations

from enarx.backends import probes
from enarx.backends.base import HOST_VISIBLE, Backend, KeepProcess, Probe, cpu_rows
from enarx.errors import BackendError

_LAUNCHER_MISSING = "launching {name} keeps is not implemented in this release; use --backend nil"


class SgxBackend(Backend):
    name = "sgx"
    description = "an Intel SGX enclave"
    protects = f"the workload's memory from the host (enclave page cache is encrypted); {HOST_VISIBLE}"

    def data_probes(self) -> list[Probe]:
        return [Probe("Driver", probes.openable("/dev/sgx_enclave"), info="/dev/sgx_enclave"),
                *cpu_rows("GenuineIntel", ("SGX", "sgx"), ("Flexible launch control", "sgx_lc")),
                Probe("Keep launcher", False, mesg=_LAUNCHER_MISSING.format(name=self.name))]

    def config_probes(self) -> list[Probe]:
        ok = probes.exists("/var/run/aesmd/aesm.socket")
        return [Probe("AESM daemon socket", ok, info="/var/run/aesmd/aesm.socket",
                      mesg=None if ok else "install and start Intel's aesmd for SGX attestation")]

    def launch(self, request=None, module=b"") -> KeepProcess:
        raise BackendError(_LAUNCHER_MISSING.format(name=self.name))
