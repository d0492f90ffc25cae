"""Where evidence comes from: nil (none), the attestation simulator, or a real SEV-SNP/TDX guest.

Each source returns the Steward extension (OID, DER value) for a given 64-byte report_data, in the envelope
formats of :mod:`enarx.attestation.envelope`.
"""

from __future__ import annotations

import abc
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from enarx.attestation.envelope import OID_KVM, OID_SNP, OID_TDX, intel_extension, snp_extension
from enarx.attestation.model import Tee
from enarx.errors import KeepError

TSM_REPORT_ROOT = "/sys/kernel/config/tsm/report"


class EvidenceSource(abc.ABC):
    """A platform's way of producing evidence for the keep's key."""

    technology: str  # kvm | sev-snp | tdx | sgx
    simulated: bool = False

    @property
    def tee(self) -> Tee:
        return Tee(self.technology)

    def curve(self) -> ec.EllipticCurve:
        return ec.SECP384R1() if self.tee is Tee.SNP else ec.SECP256R1()

    @abc.abstractmethod
    def extension(self, report_data: bytes) -> tuple[str, bytes]:
        """(OID, DER value) of the CSR extension carrying evidence over ``report_data`` (64 bytes)."""


class NilEvidence(EvidenceSource):
    """nil and kvm keeps have no hardware to attest: Enarx's empty KVM extension."""

    technology = "kvm"

    def extension(self, report_data: bytes) -> tuple[str, bytes]:
        return OID_KVM, b""


@dataclass
class TsmReport:
    """The Linux configfs TSM report interface (``/sys/kernel/config/tsm/report``), for SNP and TDX guests.

    Protocol: create a directory, write 64 bytes to ``inblob``, read ``outblob`` (the report or quote) and,
    for SEV-SNP, ``auxblob`` (the certificate table: VCEK), then remove the directory. ``generation`` must
    not change between writing and reading, or another writer raced us.
    """

    root: Path = Path(TSM_REPORT_ROOT)

    def get(self, report_data: bytes) -> tuple[str, bytes, bytes]:
        """(provider, outblob, auxblob)."""
        entry = self.root / f"enarx-{os.getpid()}"
        try:
            entry.mkdir(exist_ok=True)  # configfs creates the attribute files; a fake tree has them
        except OSError as exc:
            raise KeepError(f"cannot create a TSM report at {entry}: {exc.strerror}") from None
        try:
            provider = (entry / "provider").read_text().strip()
            (entry / "inblob").write_bytes(report_data)
            before = (entry / "generation").read_text().strip()
            outblob = (entry / "outblob").read_bytes()
            aux = entry / "auxblob"
            auxblob = aux.read_bytes() if aux.exists() else b""
            if (entry / "generation").read_text().strip() != before:
                raise KeepError("TSM report changed while it was read (a concurrent writer); retry")
            return provider, outblob, auxblob
        except OSError as exc:
            raise KeepError(f"TSM report failed: {exc.strerror or exc}") from None
        finally:
            try:
                entry.rmdir()
            except OSError:
                pass


def snp_vcek_from_auxblob(auxblob: bytes) -> bytes | None:
    """The VCEK (DER) from an SNP certificate table: entries of (GUID 16 B, offset u32, length u32)."""
    vcek_guid = bytes.fromhex("63da758d e664 4564 adc5 f4b93be8accd".replace(" ", ""))
    pos = 0
    while pos + 24 <= len(auxblob):
        guid = auxblob[pos:pos + 16]
        if guid == bytes(16):
            break
        offset = int.from_bytes(auxblob[pos + 16:pos + 20], "little")
        length = int.from_bytes(auxblob[pos + 20:pos + 24], "little")
        # GUIDs are stored in their mixed-endian binary form
        if _guid_bytes(guid) == vcek_guid and offset + length <= len(auxblob):
            return auxblob[offset:offset + length]
        pos += 24
    return None


def _guid_bytes(raw: bytes) -> bytes:
    return raw[3::-1] + raw[5:3:-1] + raw[7:5:-1] + raw[8:]


# Linux uapi <linux/sev-guest.h>: _IOWR('S', nr, struct snp_guest_request_ioctl) with a 32-byte argument.
SNP_GET_REPORT = 0xC0205300
SNP_GET_EXT_REPORT = 0xC0205302
SEV_GUEST_DEVICE = "/dev/sev-guest"
_SNP_RESPONSE = 4000
_SNP_CERTS = 4 * 4096


class SevGuestDevice:
    """``/dev/sev-guest`` (for kernels without configfs TSM): SNP_GET_EXT_REPORT, the report and the host's
    certificate table in one call. ``ioctl`` is replaceable so that tests can play the device."""

    def __init__(self, path: str = SEV_GUEST_DEVICE, ioctl=None):
        import fcntl

        self.path = path
        self.ioctl = ioctl or fcntl.ioctl

    def get(self, report_data: bytes, vmpl: int = 0) -> tuple[bytes, bytes]:
        """(1184-byte report, certificate table)."""
        import ctypes
        import struct

        request = ctypes.create_string_buffer(
            struct.pack("<64sI28x", report_data, vmpl) + struct.pack("<QI4x", 0, 0))  # snp_ext_report_req
        certs = ctypes.create_string_buffer(_SNP_CERTS)
        struct.pack_into("<QI", request, 96, ctypes.addressof(certs), _SNP_CERTS)
        response = ctypes.create_string_buffer(_SNP_RESPONSE)
        arg = bytearray(struct.pack("<B7xQQQ", 1, ctypes.addressof(request), ctypes.addressof(response), 0))
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            raise KeepError(f"cannot open {self.path}: {exc.strerror} (is this an SEV-SNP guest?)") from None
        try:
            self.ioctl(fd, SNP_GET_EXT_REPORT, arg, True)
        except OSError as exc:
            fw_error, vmm_error = struct.unpack_from("<II", arg, 24)
            raise KeepError(f"SNP_GET_EXT_REPORT failed: {exc.strerror} (firmware error 0x{fw_error:x}, "
                            f"VMM error 0x{vmm_error:x})") from None
        finally:
            os.close(fd)
        status, size = struct.unpack_from("<II", response, 0)
        if status != 0 or size < 1184 or 32 + size > _SNP_RESPONSE:
            raise KeepError(f"SEV-SNP firmware refused the report request (status 0x{status:x}, size {size})")
        return bytes(response[32:32 + 1184]), bytes(certs.raw)


class SnpGuestEvidence(EvidenceSource):
    """A real SEV-SNP guest: configfs TSM when the kernel has it, else ``/dev/sev-guest``; either way the
    report plus the VCEK from the host's certificate table."""

    technology = "sev-snp"

    def __init__(self, tsm: TsmReport | None = None, crls: list[tuple[str, bytes]] | None = None,
                 device: SevGuestDevice | None = None):
        self.tsm = tsm or TsmReport()
        self.crls = crls or []
        self.device = device or SevGuestDevice()

    def extension(self, report_data: bytes) -> tuple[str, bytes]:
        if not self.tsm.root.is_dir():
            report, aux = self.device.get(report_data)
            return self._extension(report, aux)
        provider, report, aux = self.tsm.get(report_data)
        if provider != "sev_guest":
            raise KeepError(f"TSM provider is {provider!r}, not sev_guest: this is not an SEV-SNP guest")
        return self._extension(report, aux)

    def _extension(self, report: bytes, aux: bytes) -> tuple[str, bytes]:
        vcek = snp_vcek_from_auxblob(aux)
        if vcek is None:
            raise KeepError("the host did not supply a VCEK in the SNP certificate table (auxblob); "
                            "ask the host operator to configure SNP certificates")
        return OID_SNP, snp_extension(vcek, report[:1184], self.crls)


class TdxGuestEvidence(EvidenceSource):
    """A real TDX guest, through configfs TSM; the Steward fetches or holds the TCB collateral."""

    technology = "tdx"

    def __init__(self, tsm: TsmReport | None = None):
        self.tsm = tsm or TsmReport()

    def extension(self, report_data: bytes) -> tuple[str, bytes]:
        provider, quote, _aux = self.tsm.get(report_data)
        if provider != "tdx_guest":
            raise KeepError(f"TSM provider is {provider!r}, not tdx_guest: this is not a TDX guest")
        return OID_TDX, intel_extension(quote, [], [], b"")
