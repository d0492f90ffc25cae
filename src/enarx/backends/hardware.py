"""Backends whose keeps are virtual machines or enclaves: kvm, sev (SEV-SNP), tdx and sgx.

Their availability checks are real and follow Enarx's (``platform info``). Launching such keeps is not
part of this release: each has a "keep launcher" check that fails with that message, so backend
auto-selection falls back to nil instead of picking a backend that cannot start.
"""

from __future__ import annotations

from enarx.backends import probes
from enarx.backends.base import Backend, KeepProcess, Probe
from enarx.errors import BackendError

_LAUNCHER_MISSING = "launching {name} keeps is not implemented in this release; use --backend nil"


_HOST_VISIBLE = "NOT stdio, dir preopens or plain tcp traffic, which pass through the host"
_CONFIDENTIAL_VM = ("the workload's memory and registers from the host (encrypted and integrity-protected by "
                    f"the CPU); {_HOST_VISIBLE}")


def _launcher(name: str) -> Probe:
    return Probe("Keep launcher", False, mesg=_LAUNCHER_MISSING.format(name=name))


def _kvm_rows() -> list[Probe]:
    api = probes.kvm_api_version()
    driver = Probe("Driver", probes.exists("/dev/kvm"), info="/dev/kvm",
                   children=[Probe("  API version 12", api == 12, info=str(api) if api is not None else None,
                                   mesg=None if api == 12 else "cannot open /dev/kvm or wrong KVM API version")])
    return [driver]


def _cpu_rows(vendor_name: str, *flag_rows: tuple[str, str]) -> list[Probe]:
    vendor = probes.vendor()
    flags = probes.cpu_flags()
    cpu = Probe(f"CPU vendor {vendor_name}", vendor == vendor_name, info=vendor)
    cpu.children = [Probe(f"  {label}", flag in flags) for label, flag in flag_rows]
    return [cpu]


class _HardwareBackend(Backend):
    def launch(self) -> KeepProcess:
        raise BackendError(_LAUNCHER_MISSING.format(name=self.name))


class KvmBackend(_HardwareBackend):
    name = "kvm"
    description = "a KVM virtual machine (no memory encryption)"
    protects = ("the host kernel from the workload; NOT the workload from the host: "
                "the hypervisor can read and change guest memory")

    def data_probes(self) -> list[Probe]:
        flags = probes.cpu_flags()
        vendor = probes.vendor()
        rows = _kvm_rows()
        rows.append(Probe("CPU vendor", vendor is not None, info=vendor, children=[
            Probe("  FSGSBASE instructions", "fsgsbase" in flags),
            Probe("  RDRAND instruction", "rdrand" in flags),
            Probe("  Hardware virtualization (VMX/SVM)", bool({"vmx", "svm"} & flags),
                  mesg=None if {"vmx", "svm"} & flags else
                  "/dev/kvm is not backed by VMX/SVM here (software virtualization)"),
        ]))
        rows.append(_launcher(self.name))
        return rows


class SevBackend(_HardwareBackend):
    name = "sev"
    description = "an AMD SEV-SNP confidential virtual machine"
    protects = _CONFIDENTIAL_VM

    def data_probes(self) -> list[Probe]:
        snp = probes.read_param("/sys/module/kvm_amd/parameters/sev_snp")
        rows = [
            Probe("AMD SEV firmware", probes.exists("/dev/sev"), info="/dev/sev"),
            Probe("SEV-SNP enabled in KVM", snp in ("1", "Y"), info=snp,
                  mesg=None if snp in ("1", "Y") else "load kvm_amd with sev_snp=1 on an SNP-capable host"),
        ]
        rows += _kvm_rows()
        rows += _cpu_rows("AuthenticAMD", ("SME", "sme"), ("SEV", "sev"), ("SEV-ES", "sev_es"),
                          ("SEV-SNP", "sev_snp"))
        rows.append(_launcher(self.name))
        return rows

    def config_probes(self) -> list[Probe]:
        return [
            Probe("/dev/sev is readable", probes.openable("/dev/sev")),
            Probe("/dev/sev is writable", probes.openable("/dev/sev", 0o2)),
        ]


class TdxBackend(_HardwareBackend):
    name = "tdx"
    description = "an Intel TDX trust domain"
    protects = _CONFIDENTIAL_VM

    def data_probes(self) -> list[Probe]:
        tdx = probes.read_param("/sys/module/kvm_intel/parameters/tdx")
        rows = [Probe("TDX enabled in KVM", tdx in ("1", "Y"), info=tdx,
                      mesg=None if tdx in ("1", "Y") else "load kvm_intel with tdx=1 on a TDX-capable host")]
        rows += _kvm_rows()
        rows += _cpu_rows("GenuineIntel", ("TDX host platform", "tdx_host_platform"))
        rows.append(_launcher(self.name))
        return rows


class SgxBackend(_HardwareBackend):
    name = "sgx"
    description = "an Intel SGX enclave"
    protects = f"the workload's memory from the host (enclave page cache is encrypted); {_HOST_VISIBLE}"

    def data_probes(self) -> list[Probe]:
        rows = [Probe("Driver", probes.openable("/dev/sgx_enclave"), info="/dev/sgx_enclave")]
        rows += _cpu_rows("GenuineIntel", ("SGX", "sgx"), ("Flexible launch control", "sgx_lc"))
        rows.append(_launcher(self.name))
        return rows

    def config_probes(self) -> list[Probe]:
        ok = probes.exists("/var/run/aesmd/aesm.socket")
        return [Probe("AESM daemon socket", ok, info="/var/run/aesmd/aesm.socket",
                      mesg=None if ok else "install and start Intel's aesmd for SGX attestation")]
