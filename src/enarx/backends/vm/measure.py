"""Expected launch measurements of a confidential VM keep, computed from the image the host will boot.

**SEV-SNP** (PyPI ``sev-snp-measure``): the launch digest covers OVMF (built from edk2's
``OvmfPkg/AmdSev``), the pages its SEV metadata declares, the kernel-hashes page QEMU fills for measured
direct boot (``kernel-hashes=on``: SHA-256 of kernel, initrd and command line) and one VMSA per vCPU.
Assumptions, matching :func:`enarx.backends.vm.qemu.sev_snp_argv`: QEMU as the VMM, 1 vCPU of type
``EPYC-v4``, guest features ``0x1`` (SNP active, nothing else), and the command line exactly as passed to
``-append``. HOST_DATA is not part of the digest: the report carries it beside the measurement.

**TDX**: MRTD covers the TDVF pages its metadata marks for measurement (``TDH.MEM.PAGE.ADD`` of each page
and ``TDH.MR.EXTEND`` of each 256-byte chunk, per Intel's TDX module and TDVF specifications). TDVF then
measures the kernel, initrd and command line into RTMRs through its event log; those depend on the
firmware's event sequence and are reported here only as the components' SHA-384 digests.
"""

from __future__ import annotations

import hashlib
import struct
import uuid
from pathlib import Path
from typing import NamedTuple

from enarx.errors import BackendError

SNP_VCPU_TYPE = "EPYC-v4"
SNP_GUEST_FEATURES = 0x1

TDVF_METADATA_GUID = uuid.UUID("e47a6535-984a-4798-865e-4685a7bf8ec2")
TDVF_EXTEND = 0x1  # section attribute: measured into MRTD
TDVF_PAGE_AUG = 0x2  # section attribute: accepted by the guest later, not added at build time
PAGE = 4096


class SnpInputs(NamedTuple):
    ovmf: Path
    kernel: Path | None
    initrd: Path | None
    cmdline: str | None
    vcpus: int = 1
    vcpu_type: str = SNP_VCPU_TYPE
    guest_features: int = SNP_GUEST_FEATURES
    vmm: str = "QEMU"  # sev-snp-measure's VMMType name: QEMU, ec2, gce
    ovmf_hash: str = ""  # the digest of OVMF's own pages, when precomputed


def snp_launch_digest(inputs: SnpInputs) -> bytes:
    """The 48-byte SEV-SNP MEASUREMENT a keep booted from these inputs reports."""
    from sevsnpmeasure import guest, vcpu_types
    from sevsnpmeasure.sev_mode import SevMode
    from sevsnpmeasure.vmm_types import VMMType

    try:
        return guest.calc_launch_digest(
            SevMode.SEV_SNP, inputs.vcpus, vcpu_types.CPU_SIGS[inputs.vcpu_type], str(inputs.ovmf),
            _opt(inputs.kernel), _opt(inputs.initrd), inputs.cmdline, inputs.guest_features,
            snp_ovmf_hash_str=inputs.ovmf_hash, vmm_type=VMMType[inputs.vmm])
    except (RuntimeError, ValueError, KeyError, OSError) as exc:
        raise BackendError(f"cannot compute the SEV-SNP launch measurement from {inputs.ovmf}: {exc}") from None


def _opt(path: Path | None) -> str | None:
    return str(path) if path is not None else None


# -- TDX --------------------------------------------------------------------------------------------------
class TdvfSection(NamedTuple):
    data_offset: int
    raw_size: int
    gpa: int
    memory_size: int
    kind: int
    attributes: int


def tdvf_sections(tdvf: Path) -> list[TdvfSection]:
    """The TDVF metadata ("TDVF" descriptor found through the firmware footer table's TDX metadata entry)."""
    from sevsnpmeasure.ovmf import OVMF

    data = tdvf.read_bytes()
    try:
        entry = OVMF(str(tdvf)).table_item(str(TDVF_METADATA_GUID))
    except (KeyError, RuntimeError, ValueError) as exc:
        raise BackendError(f"{tdvf}: not a TDVF image (no TDX metadata in its footer table: {exc})") from None
    start = len(data) - struct.unpack_from("<I", entry)[0] if len(entry) >= 4 else -1
    if start < 0 or data[start:start + 4] != b"TDVF":
        raise BackendError(f"{tdvf}: TDVF metadata descriptor not found where the footer table points")
    _sig, length, version, count = struct.unpack_from("<4sIII", data, start)
    if version != 1 or 16 + count * 32 > length or start + length > len(data):
        raise BackendError(f"{tdvf}: malformed TDVF metadata descriptor")
    return [TdvfSection(*struct.unpack_from("<IIQQII", data, start + 16 + i * 32)) for i in range(count)]


def tdx_mrtd(tdvf: Path) -> bytes:
    """MRTD as QEMU builds the TD: every page of every section not accepted later (``PAGE_AUG``) is added
    (a TDH.MEM.PAGE.ADD record), and sections with the extend attribute are measured in 256-byte chunks
    (a TDH.MR.EXTEND record, then the chunk)."""
    data = tdvf.read_bytes()
    h = hashlib.sha384()
    for section in tdvf_sections(tdvf):
        if section.attributes & TDVF_PAGE_AUG:
            continue
        if section.memory_size % PAGE or section.gpa % PAGE:
            raise BackendError(f"{tdvf}: TDVF section at {section.gpa:#x} is not page aligned")
        body = data[section.data_offset:section.data_offset + section.raw_size].ljust(section.memory_size, b"\0")
        for page in range(0, section.memory_size, PAGE):
            gpa = section.gpa + page
            h.update(_tdx_record(b"MEM.PAGE.ADD", gpa))
            if section.attributes & TDVF_EXTEND:
                for chunk in range(0, PAGE, 256):
                    h.update(_tdx_record(b"MR.EXTEND", gpa + chunk))
                    h.update(body[page + chunk:page + chunk + 256])
    return h.digest()


def _tdx_record(operation: bytes, gpa: int) -> bytes:
    """The 128-byte buffer the TDX module hashes for a page add or extend: name, GPA, zeros."""
    return operation.ljust(16, b"\0") + struct.pack("<Q", gpa) + b"\0" * 104


def tdx_component_digests(kernel: Path, initrd: Path, cmdline: str) -> dict[str, str]:
    """SHA-384 of what TDVF measures into the RTMRs at boot (the event log's digests): kernel, initrd and
    the command line (as UTF-16 with its terminator, the way the EFI stub hands it over)."""
    return {"kernel_sha384": hashlib.sha384(kernel.read_bytes()).hexdigest(),
            "initrd_sha384": hashlib.sha384(initrd.read_bytes()).hexdigest(),
            "cmdline_sha384": hashlib.sha384((cmdline + "\0").encode("utf-16-le")).hexdigest()}


# -- the workload bound to the launch ------------------------------------------------------------------------
def host_data(package_digest_sha256: bytes) -> bytes:
    """SEV-SNP HOST_DATA (32 bytes): the workload package's SHA-256 digest, as is."""
    if len(package_digest_sha256) != 32:
        raise BackendError("HOST_DATA takes a 32-byte digest")
    return package_digest_sha256


def mrconfigid(package_digest_sha384: bytes) -> bytes:
    """TDX MRCONFIGID (48 bytes): the workload package's SHA-384 digest, as is."""
    if len(package_digest_sha384) != 48:
        raise BackendError("MRCONFIGID takes a 48-byte digest")
    return package_digest_sha384
