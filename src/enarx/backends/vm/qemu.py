"""QEMU command lines for VM keeps: a microVM (``kvm``, or TCG-emulated) and q35 confidential guests (SEV-SNP, TDX).

Every keep has the same devices: the kernel console on the one serial port (the host keeps its last lines
for crash reports), the keep's channel on a virtio-serial port named ``org.enarx.keep.0`` over a socket
the host passes in as a file descriptor (no path anyone else could open), and, when the Enarx.toml needs
it, one virtio-net device on QEMU's restricted user network. Nothing else: ``-nodefaults``.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path
from typing import NamedTuple

from enarx.errors import BackendError

PORT_NAME = "org.enarx.keep.0"
#: A guest needs SSE4.2/POPCNT (Python, wasmtime); under TCG ``max`` is every feature QEMU emulates.
TCG_CPU = "max"
BASE_CMDLINE = "console=ttyS0 quiet panic=-1 8250.nr_uarts=1 cryptomgr.notests audit=0 rdinit=/init"
#: Development keeps (kvm, TCG) trade the guest's own side-channel mitigations for start-up time: the guest
#: runs one workload and nothing else. Confidential keeps keep the kernel defaults.
FAST_CMDLINE = "mitigations=off"
SNP_MIN_QEMU = (9, 1)
TDX_MIN_QEMU = (10, 1)
SNP_POLICY = 0x30000  # SMT allowed, reserved bit 17 set; debug, migration agent and single-socket off


class Machine(NamedTuple):
    """What to boot and how; ``channel_fd`` is the host-passed socket of the keep's channel."""

    kernel: Path
    initrd: Path
    cmdline: str
    memory_mib: int
    channel_fd: int
    name: str
    netdev: str | None = None  # the full ``-netdev user,…`` value, when the keep has a network
    volumes: list[tuple[str, Path]] = []  # noqa: RUF012 - (serial, ext4 image): read-only disks (kvm only)
    shares: list[tuple[str, Path]] = []  # noqa: RUF012 - (virtiofs tag, vhost-user socket): shared dirs (kvm only)


def qemu_binary(explicit: str | None = None) -> str:
    path = explicit or shutil.which("qemu-system-x86_64")
    if not path:
        raise BackendError("qemu-system-x86_64 not found: install Debian's qemu-system-x86 package "
                           "(or give --qemu / ENARX_QEMU)")
    return path


def qemu_version(binary: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"version (\d+)\.(\d+)", out)
    return (int(match.group(1)), int(match.group(2))) if match else None


def _common(machine: Machine) -> list[str]:
    return ["-name", machine.name, "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-smp", "1", "-m", f"{machine.memory_mib}M",
            "-chardev", "stdio,id=console,signal=off", "-serial", "chardev:console",
            "-kernel", str(machine.kernel), "-initrd", str(machine.initrd), "-append", machine.cmdline,
            "-chardev", f"socket,id=keep,fd={machine.channel_fd}"]


def microvm_argv(qemu: str, machine: Machine, *, accel: str) -> list[str]:
    """A ``kvm`` keep: ``-M microvm`` with virtio-mmio devices; ``accel`` is ``kvm`` or ``tcg``."""
    argv = [qemu, *_common(machine)]
    if machine.shares:  # vhost-user devices need the guest's memory in a shared mapping the daemons can map,
        argv += ["-M", "microvm,memory-backend=ram0",  # and modern virtio-mmio (libvhost-user refuses legacy)
                 "-object", f"memory-backend-memfd,id=ram0,size={machine.memory_mib}M,share=on",
                 "-global", "virtio-mmio.force-legacy=false"]
    else:
        argv += ["-M", "microvm"]
    if accel == "tcg":
        argv += ["-accel", "tcg,tb-size=64", "-cpu", TCG_CPU]
    else:
        argv += ["-accel", "kvm", "-cpu", "host"]
    argv += ["-device", "virtio-serial-device", "-device", f"virtserialport,chardev=keep,name={PORT_NAME}"]
    if machine.netdev:
        argv += ["-netdev", machine.netdev, "-device", "virtio-net-device,netdev=net0"]
    for i, (serial, path) in enumerate(machine.volumes):
        argv += ["-drive", f"file={path},format=raw,if=none,id=vol{i},readonly=on",
                 "-device", f"virtio-blk-device,drive=vol{i},serial={serial}"]
    for i, (tag, socket_path) in enumerate(machine.shares):
        argv += ["-chardev", f"socket,id=fs{i},path={socket_path}",
                 "-device", f"vhost-user-fs-device,chardev=fs{i},tag={tag}"]
    return argv


def _q35(qemu: str, machine: Machine, firmware: Path, guest_object: str, guest_id: str) -> list[str]:
    """q35 with virtio-pci devices that use the bounce buffers a confidential guest needs (iommu_platform)."""
    pci = "disable-legacy=on,iommu_platform=true"
    argv = [qemu, *_common(machine), "-accel", "kvm", "-bios", str(firmware),
            "-machine", f"q35,confidential-guest-support={guest_id},memory-backend=ram0,kernel-irqchip=split",
            "-object", f"memory-backend-memfd,id=ram0,size={machine.memory_mib}M,share=true",
            "-object", guest_object,
            "-device", f"virtio-serial-pci,{pci}", "-device", f"virtserialport,chardev=keep,name={PORT_NAME}"]
    if machine.netdev:
        argv += ["-netdev", machine.netdev, "-device", f"virtio-net-pci,{pci},netdev=net0,romfile="]
    return argv


def sev_snp_argv(qemu: str, machine: Machine, firmware: Path, *, host_data: bytes, cbitpos: int = 51,
                 reduced_phys_bits: int = 1, cpu: str = "EPYC-v4") -> list[str]:
    """A SEV-SNP keep (QEMU ≥ 9.1): measured direct boot (``kernel-hashes=on``: OVMF checks the kernel,
    initrd and command line against the hashes QEMU put in the measured firmware page) and HOST_DATA."""
    if len(host_data) != 32:
        raise BackendError("SEV-SNP HOST_DATA is 32 bytes")
    snp = (f"sev-snp-guest,id=sev0,cbitpos={cbitpos},reduced-phys-bits={reduced_phys_bits},kernel-hashes=on,"
           f"policy={SNP_POLICY:#x},host-data={base64.b64encode(host_data).decode()}")
    return [*_q35(qemu, machine, firmware, snp, "sev0"), "-cpu", cpu]


def tdx_argv(qemu: str, machine: Machine, firmware: Path, *, mrconfigid: bytes,
             quote_socket: str | None = None) -> list[str]:
    """A TDX keep (QEMU ≥ 10.1): TDVF as ``-bios`` (it measures kernel, initrd and command line into RTMRs),
    MRCONFIGID = the workload, and the host's quote generation service for remotely verifiable quotes."""
    if len(mrconfigid) != 48:
        raise BackendError("TDX MRCONFIGID is 48 bytes")
    tdx = f"tdx-guest,id=tdx0,mrconfigid={base64.b64encode(mrconfigid).decode()}"
    if quote_socket:
        tdx = ('{"qom-type":"tdx-guest","id":"tdx0","mrconfigid":"' + base64.b64encode(mrconfigid).decode()
               + '","quote-generation-socket":{"type":"unix","path":"' + quote_socket + '"}}')
    return [*_q35(qemu, machine, firmware, tdx, "tdx0"), "-cpu", "host"]
