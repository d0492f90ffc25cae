"""The VM backends: ``kvm`` (a QEMU microVM), ``sev`` (SEV-SNP) and ``tdx`` — one launcher, one guest image.

Availability is checked, never assumed: ``/dev/kvm`` alone proves nothing (on some machines it is a
software virtualizer that runs no stock guest kernel), so ``kvm`` needs the hardware KVM module
(``kvm_intel``/``kvm_amd``) and VMX/SVM. ``ENARX_KVM_ACCEL=tcg`` runs the same microVM under QEMU's
emulator for development: it is then "emulated, no isolation" in ``platform info``, on the keep's warning
line and in its attestation, and is used only when asked for by name (``--backend kvm``).
"""

from __future__ import annotations

import os

from enarx.backends import probes
from enarx.backends.base import HOST_VISIBLE, Backend, KeepProcess, Probe, cpu_rows
from enarx.errors import BackendError
from enarx.isolation import EMULATED

_CONFIDENTIAL_VM = ("the workload's memory and registers from the host (encrypted and integrity-protected by "
                    f"the CPU); {HOST_VISIBLE}")


def kvm_accel() -> str:
    """``kvm`` (hardware) unless ``ENARX_KVM_ACCEL=tcg`` asks for QEMU's emulator."""
    value = os.environ.get("ENARX_KVM_ACCEL", "kvm").strip().lower() or "kvm"
    if value not in ("kvm", "tcg"):
        raise BackendError(f"ENARX_KVM_ACCEL={value!r}: expected kvm or tcg")
    return value


def _passed(probe: Probe) -> bool:
    return probe.passed and all(_passed(c) for c in probe.children)


def _kvm_driver_rows() -> list[Probe]:
    api = probes.kvm_api_version()
    return [Probe("Driver", probes.exists("/dev/kvm"), info="/dev/kvm",
                  children=[Probe("  API version 12", api == 12, info=str(api) if api is not None else None,
                                  mesg=None if api == 12 else "cannot open /dev/kvm or wrong KVM API version")])]


def _hardware_kvm_row() -> Probe:
    """VMX/SVM and the hardware KVM module; a software virtualizer (PVM) behind /dev/kvm does not count."""
    flags = probes.cpu_flags()
    vmx_svm = bool({"vmx", "svm"} & flags)
    module = next((m for m in ("kvm_intel", "kvm_amd") if probes.exists(f"/sys/module/{m}")), None)
    pvm = probes.exists("/sys/module/kvm_pvm")
    ok = vmx_svm and module is not None and not pvm
    mesg = None
    if not ok:
        mesg = ("/dev/kvm is a software virtualizer (kvm_pvm) that cannot run the keep's kernel" if pvm else
                "no hardware virtualization (VMX/SVM with kvm_intel/kvm_amd)")
        mesg += "; for development set ENARX_KVM_ACCEL=tcg (emulated, no isolation)"
    return Probe("Hardware virtualization (VMX/SVM)", ok, info=module, mesg=mesg)


def _qemu_row(binary: str | None = None, minimum: tuple[int, int] | None = None) -> Probe:
    import shutil

    from enarx.backends.vm.qemu import qemu_version

    path = binary or os.environ.get("ENARX_QEMU") or shutil.which("qemu-system-x86_64")
    if not path:
        return Probe("QEMU", False, mesg="install Debian's qemu-system-x86 package")
    version = qemu_version(path)
    ok = version is not None and (minimum is None or version >= minimum)
    info = f"{path} {'.'.join(map(str, version))}" if version else path
    need = f"QEMU ≥ {minimum[0]}.{minimum[1]} is needed (give ENARX_QEMU or --qemu)" if minimum else None
    return Probe("QEMU", ok, info=info, mesg=None if ok else need)


def _file_row(name: str, env: str, what: str) -> Probe:
    value = os.environ.get(env)
    ok = bool(value) and os.path.isfile(value)
    return Probe(name, ok, info=value, mesg=None if ok else f"set {env} to {what}")


class VmBackend(Backend):
    """A keep that is a QEMU virtual machine booting the guest image."""

    kind = "kvm"

    def hardware_probes(self) -> list[Probe]:
        """The cheap checks of the machine itself; the inputs (QEMU's version, firmware) come after."""
        return self.data_probes()

    def have(self) -> bool:
        """Hardware first: without it, asking QEMU for its version (a process start) is not needed, and
        `enarx run` checks every backend when it picks one."""
        if not all(_passed(p) for p in self.hardware_probes()):
            return False
        return super().have()

    def launch(self, request, module: bytes) -> KeepProcess:
        from enarx.backends.vm.launch import launch_vm

        return launch_vm(self.kind, request, module)


class KvmBackend(VmBackend):
    name = "kvm"
    kind = "kvm"
    description = "a KVM virtual machine (no memory encryption)"
    protects = ("the host kernel from the workload; NOT the workload from the host: "
                "the hypervisor can read and change guest memory")

    @property
    def auto_select(self) -> bool:  # type: ignore[override]
        return kvm_accel() == "kvm"

    @property
    def isolation(self) -> str | None:  # type: ignore[override]
        return EMULATED if kvm_accel() == "tcg" else None

    def hardware_probes(self) -> list[Probe]:
        if kvm_accel() == "tcg":
            return [Probe("Accelerator", True, info=f"tcg (ENARX_KVM_ACCEL): {EMULATED}")]
        vendor = probes.vendor()
        flags = probes.cpu_flags()
        rows = _kvm_driver_rows()
        rows.append(Probe("CPU vendor", vendor is not None, info=vendor, children=[
            Probe("  FSGSBASE instructions", "fsgsbase" in flags),
            Probe("  RDRAND instruction", "rdrand" in flags),
        ]))
        return [*rows, _hardware_kvm_row()]

    def data_probes(self) -> list[Probe]:
        return [*self.hardware_probes(), _qemu_row()]


def _confidential_inputs(minimum: tuple[int, int], firmware: str) -> list[Probe]:
    return [_qemu_row(os.environ.get("ENARX_QEMU"), minimum),
            _file_row("Firmware", "ENARX_OVMF", firmware),
            _file_row("Guest kernel", "ENARX_KERNEL", "a kernel ≥ 6.7 package (.deb) or bzImage with "
                      "configfs TSM and the guest drivers")]


class SevBackend(VmBackend):
    name = "sev"
    kind = "sev"
    description = "an AMD SEV-SNP confidential virtual machine"
    protects = _CONFIDENTIAL_VM

    def data_probes(self) -> list[Probe]:
        from enarx.backends.vm.qemu import SNP_MIN_QEMU

        return [*self.hardware_probes(), *_confidential_inputs(SNP_MIN_QEMU, "OVMF built from edk2's "
                                                                "OvmfPkg/AmdSev (OVMF.amdsev.fd)")]

    def hardware_probes(self) -> list[Probe]:
        snp = probes.read_param("/sys/module/kvm_amd/parameters/sev_snp")
        rows = [
            Probe("AMD SEV firmware", probes.exists("/dev/sev"), info="/dev/sev"),
            Probe("SEV-SNP enabled in KVM", snp in ("1", "Y"), info=snp,
                  mesg=None if snp in ("1", "Y") else "load kvm_amd with sev_snp=1 on an SNP-capable host"),
        ]
        rows += _kvm_driver_rows()
        rows += cpu_rows("AuthenticAMD", ("SME", "sme"), ("SEV", "sev"), ("SEV-ES", "sev_es"),
                         ("SEV-SNP", "sev_snp"))
        return rows

    def config_probes(self) -> list[Probe]:
        return [
            Probe("/dev/sev is readable", probes.openable("/dev/sev")),
            Probe("/dev/sev is writable", probes.openable("/dev/sev", 0o2)),
        ]


class TdxBackend(VmBackend):
    name = "tdx"
    kind = "tdx"
    description = "an Intel TDX trust domain"
    protects = _CONFIDENTIAL_VM

    def data_probes(self) -> list[Probe]:
        from enarx.backends.vm.qemu import TDX_MIN_QEMU

        return [*self.hardware_probes(), *_confidential_inputs(TDX_MIN_QEMU, "TDVF (edk2's OvmfPkg/IntelTdx, "
                                                                "OVMF.inteltdx.fd)")]

    def hardware_probes(self) -> list[Probe]:
        tdx = probes.read_param("/sys/module/kvm_intel/parameters/tdx")
        rows = [Probe("TDX enabled in KVM", tdx in ("1", "Y"), info=tdx,
                      mesg=None if tdx in ("1", "Y") else "load kvm_intel with tdx=1 on a TDX-capable host")]
        rows += _kvm_driver_rows()
        rows += cpu_rows("GenuineIntel", ("TDX host platform", "tdx_host_platform"))
        return rows
