"""AMD SEV-SNP ``ATTESTATION_REPORT`` byte layout (SNP firmware ABI, report versions 2, 3 and 5).

Pure bytes ↔ dataclass, nothing else: no signatures, no policy. All integers are little-endian.

====== ===== ==========================================================================
offset size  field
====== ===== ==========================================================================
0x000  4     version (2; 3 adds CPUID family/model/stepping; 5 adds mitigation vectors)
0x004  4     guest_svn
0x008  8     guest policy (ABI minor/major, SMT, reserved-1, MIGRATE_MA, DEBUG, SINGLE_SOCKET…)
0x010  16    family_id            0x020 16 image_id
0x030  4     vmpl                 0x034 4  signature_algo (1 = ECDSA P-384 with SHA-384)
0x038  8     current_tcb          0x040 8  platform_info
0x048  4     flags: bit0 author_key_en, bit1 mask_chip_key, bits2-4 signing_key (0 VCEK, 1 VLEK, 7 none)
0x050  64    report_data          0x090 48 measurement
0x0C0  32    host_data            0x0E0 48 id_key_digest       0x110 48 author_key_digest
0x140  32    report_id            0x160 32 report_id_ma
0x180  8     reported_tcb         0x188 3  cpuid fam/model/stepping (v3+)
0x1A0  64    chip_id              0x1E0 8  committed_tcb
0x1E8  3     current build/minor/major        0x1EC 3 committed build/minor/major
0x1F0  8     launch_tcb           0x1F8 8  launch_mit_vector (v5)   0x200 8 current_mit_vector (v5)
0x2A0  512   signature: r (72 B LE), s (72 B LE), reserved; signed region is [0x000, 0x2A0)
====== ===== ==========================================================================

TCB_VERSION byte layout depends on the CPU family: Milan/Genoa (family 0x19) ``[bl, tee, 0,0,0,0, snp,
ucode]``; Turin (family 0x1A) ``[fmc, bl, tee, snp, 0,0,0, ucode]``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace
from typing import Any

from enarx.attestation.model import MalformedEvidence

REPORT_SIZE = 0x4A0
SIGNED_SIZE = 0x2A0
SIG_OFFSET = 0x2A0
SIG_COMPONENT = 72
SUPPORTED_VERSIONS = (2, 3, 4, 5)
ECDSA_P384_SHA384 = 1

# guest policy bits
POLICY_SMT = 1 << 16
POLICY_RESERVED_1 = 1 << 17
POLICY_MIGRATE_MA = 1 << 18
POLICY_DEBUG = 1 << 19
POLICY_SINGLE_SOCKET = 1 << 20
POLICY_CXL_ALLOW = 1 << 21
POLICY_MEM_AES_256_XTS = 1 << 22
POLICY_RAPL_DIS = 1 << 23
POLICY_CIPHERTEXT_HIDING = 1 << 24
POLICY_PAGE_SWAP_DISABLE = 1 << 25

POLICY_BITS = {
    "smt": POLICY_SMT,
    "migrate_ma": POLICY_MIGRATE_MA,
    "debug": POLICY_DEBUG,
    "single_socket": POLICY_SINGLE_SOCKET,
    "cxl_allow": POLICY_CXL_ALLOW,
    "mem_aes_256_xts": POLICY_MEM_AES_256_XTS,
    "rapl_dis": POLICY_RAPL_DIS,
    "ciphertext_hiding": POLICY_CIPHERTEXT_HIDING,
    "page_swap_disable": POLICY_PAGE_SWAP_DISABLE,
}

PLATFORM_INFO_BITS = {
    "smt_enabled": 1 << 0,
    "tsme_enabled": 1 << 1,
    "ecc_enabled": 1 << 2,
    "rapl_disabled": 1 << 3,
    "ciphertext_hiding_enabled": 1 << 4,
    "alias_check_complete": 1 << 5,
    "tio_enabled": 1 << 7,
}

SIGNING_KEYS = {0: "vcek", 1: "vlek", 7: "none"}

FAMILY_MILAN_GENOA = 0x19
FAMILY_TURIN = 0x1A


def product_from_cpuid(family: int, model: int) -> str | None:
    """AMD product line from CPUID (report v3+): Milan, Genoa or Turin; ``None`` when unknown/absent."""
    if family == FAMILY_MILAN_GENOA:
        if model <= 0x0F:
            return "Milan"
        if 0x10 <= model <= 0x1F or 0xA0 <= model <= 0xAF:
            return "Genoa"
        return None
    if family == FAMILY_TURIN:
        return "Turin"
    return None


@dataclass(frozen=True)
class TcbVersion:
    """A TCB_VERSION: security patch levels of firmware components. ``fmc`` exists on Turin only."""

    bootloader: int = 0
    tee: int = 0
    snp: int = 0
    microcode: int = 0
    fmc: int | None = None

    @classmethod
    def decode(cls, raw: int, turin: bool = False) -> TcbVersion:
        b = raw.to_bytes(8, "little")
        if turin:
            return cls(bootloader=b[1], tee=b[2], snp=b[3], microcode=b[7], fmc=b[0])
        return cls(bootloader=b[0], tee=b[1], snp=b[6], microcode=b[7])

    def encode(self, turin: bool | None = None) -> int:
        turin = self.fmc is not None if turin is None else turin
        if turin:
            b = bytes([self.fmc or 0, self.bootloader, self.tee, self.snp, 0, 0, 0, self.microcode])
        else:
            b = bytes([self.bootloader, self.tee, 0, 0, 0, 0, self.snp, self.microcode])
        return int.from_bytes(b, "little")

    def components(self) -> dict[str, int]:
        out = {"bootloader": self.bootloader, "tee": self.tee, "snp": self.snp, "microcode": self.microcode}
        if self.fmc is not None:
            out["fmc"] = self.fmc
        return out

    def __str__(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.components().items())


@dataclass(frozen=True)
class SnpReport:
    """One parsed attestation report; ``raw`` keeps the exact bytes (the signature covers ``raw[:0x2A0]``)."""

    version: int
    guest_svn: int
    policy: int
    family_id: bytes
    image_id: bytes
    vmpl: int
    signature_algo: int
    current_tcb_raw: int
    platform_info: int
    flags: int
    report_data: bytes
    measurement: bytes
    host_data: bytes
    id_key_digest: bytes
    author_key_digest: bytes
    report_id: bytes
    report_id_ma: bytes
    reported_tcb_raw: int
    cpuid_family: int
    cpuid_model: int
    cpuid_stepping: int
    chip_id: bytes
    committed_tcb_raw: int
    current_build: int
    current_minor: int
    current_major: int
    committed_build: int
    committed_minor: int
    committed_major: int
    launch_tcb_raw: int
    launch_mit_vector: int
    current_mit_vector: int
    signature_r: int
    signature_s: int
    raw: bytes = field(repr=False, default=b"")

    # -- derived views -------------------------------------------------------------------------
    @property
    def is_turin(self) -> bool:
        return self.version >= 3 and self.cpuid_family == FAMILY_TURIN

    @property
    def product(self) -> str | None:
        if self.version < 3:
            return None
        return product_from_cpuid(self.cpuid_family, self.cpuid_model)

    @property
    def reported_tcb(self) -> TcbVersion:
        return TcbVersion.decode(self.reported_tcb_raw, self.is_turin)

    @property
    def current_tcb(self) -> TcbVersion:
        return TcbVersion.decode(self.current_tcb_raw, self.is_turin)

    @property
    def committed_tcb(self) -> TcbVersion:
        return TcbVersion.decode(self.committed_tcb_raw, self.is_turin)

    @property
    def launch_tcb(self) -> TcbVersion:
        return TcbVersion.decode(self.launch_tcb_raw, self.is_turin)

    @property
    def author_key_en(self) -> bool:
        return bool(self.flags & 1)

    @property
    def mask_chip_key(self) -> bool:
        return bool(self.flags & 2)

    @property
    def signing_key(self) -> str:
        return SIGNING_KEYS.get((self.flags >> 2) & 7, f"reserved({(self.flags >> 2) & 7})")

    @property
    def debug(self) -> bool:
        return bool(self.policy & POLICY_DEBUG)

    @property
    def abi_major(self) -> int:
        return (self.policy >> 8) & 0xFF

    @property
    def abi_minor(self) -> int:
        return self.policy & 0xFF

    def policy_flags(self) -> dict[str, bool]:
        return {name: bool(self.policy & bit) for name, bit in POLICY_BITS.items()}

    def platform_flags(self) -> dict[str, bool]:
        return {name: bool(self.platform_info & bit) for name, bit in PLATFORM_INFO_BITS.items()}

    @property
    def signed_bytes(self) -> bytes:
        return self.raw[:SIGNED_SIZE]

    def to_dict(self) -> dict[str, Any]:
        """A readable view for ``enarx attest show``: hex for byte fields, decoded TCBs and flags."""
        fam = lambda t: t.components()
        return {
            "version": self.version,
            "guest_svn": self.guest_svn,
            "policy": f"{self.policy:#x}",
            "policy_flags": {"abi": f"{self.abi_major}.{self.abi_minor}", **self.policy_flags()},
            "family_id": self.family_id.hex(),
            "image_id": self.image_id.hex(),
            "vmpl": self.vmpl,
            "signature_algo": self.signature_algo,
            "current_tcb": fam(self.current_tcb),
            "platform_info": {"value": f"{self.platform_info:#x}", **self.platform_flags()},
            "flags": {"author_key_en": self.author_key_en, "mask_chip_key": self.mask_chip_key,
                      "signing_key": self.signing_key},
            "report_data": self.report_data.hex(),
            "measurement": self.measurement.hex(),
            "host_data": self.host_data.hex(),
            "id_key_digest": self.id_key_digest.hex(),
            "author_key_digest": self.author_key_digest.hex(),
            "report_id": self.report_id.hex(),
            "report_id_ma": self.report_id_ma.hex(),
            "reported_tcb": fam(self.reported_tcb),
            "cpuid": {"family": f"{self.cpuid_family:#x}", "model": f"{self.cpuid_model:#x}",
                      "stepping": f"{self.cpuid_stepping:#x}", "product": self.product},
            "chip_id": self.chip_id.hex(),
            "committed_tcb": fam(self.committed_tcb),
            "current_firmware": f"{self.current_major}.{self.current_minor}.{self.current_build}",
            "committed_firmware": f"{self.committed_major}.{self.committed_minor}.{self.committed_build}",
            "launch_tcb": fam(self.launch_tcb),
            "launch_mit_vector": f"{self.launch_mit_vector:#x}",
            "current_mit_vector": f"{self.current_mit_vector:#x}",
            "signature": {"r": f"{self.signature_r:x}", "s": f"{self.signature_s:x}"},
        }


def looks_like_report(data: bytes) -> bool:
    """Cheap content sniffing: version 2..5 at 0x00 and signature algorithm 1 at 0x34."""
    if len(data) < 0x38:
        return False
    version, algo = struct.unpack_from("<I", data, 0)[0], struct.unpack_from("<I", data, 0x34)[0]
    return version in SUPPORTED_VERSIONS and algo == ECDSA_P384_SHA384


def parse_report(data: bytes) -> SnpReport:
    """Parse exactly one report. Raises :class:`MalformedEvidence` on any size/version/algorithm problem."""
    data = bytes(data)
    if len(data) != REPORT_SIZE:
        what = "truncated" if len(data) < REPORT_SIZE else "has trailing bytes"
        raise MalformedEvidence(f"SEV-SNP report {what}: {len(data)} bytes, expected {REPORT_SIZE}")
    u32 = lambda off: struct.unpack_from("<I", data, off)[0]
    u64 = lambda off: struct.unpack_from("<Q", data, off)[0]
    version = u32(0x00)
    if version not in SUPPORTED_VERSIONS:
        raise MalformedEvidence(f"unsupported SEV-SNP report version {version} (supported: 2, 3, 5)")
    algo = u32(0x34)
    if algo != ECDSA_P384_SHA384:
        raise MalformedEvidence(f"unsupported SEV-SNP signature algorithm {algo} (expected 1, ECDSA P-384)")
    if any(data[SIG_OFFSET + 2 * SIG_COMPONENT :]):
        # not covered by the signature, so nothing may hide there
        raise MalformedEvidence("SEV-SNP report: reserved bytes after the signature are not zero")
    v3 = version >= 3
    v5 = version >= 5
    return SnpReport(
        version=version,
        guest_svn=u32(0x04),
        policy=u64(0x08),
        family_id=data[0x10:0x20],
        image_id=data[0x20:0x30],
        vmpl=u32(0x30),
        signature_algo=algo,
        current_tcb_raw=u64(0x38),
        platform_info=u64(0x40),
        flags=u32(0x48),
        report_data=data[0x50:0x90],
        measurement=data[0x90:0xC0],
        host_data=data[0xC0:0xE0],
        id_key_digest=data[0xE0:0x110],
        author_key_digest=data[0x110:0x140],
        report_id=data[0x140:0x160],
        report_id_ma=data[0x160:0x180],
        reported_tcb_raw=u64(0x180),
        cpuid_family=data[0x188] if v3 else 0,
        cpuid_model=data[0x189] if v3 else 0,
        cpuid_stepping=data[0x18A] if v3 else 0,
        chip_id=data[0x1A0:0x1E0],
        committed_tcb_raw=u64(0x1E0),
        current_build=data[0x1E8],
        current_minor=data[0x1E9],
        current_major=data[0x1EA],
        committed_build=data[0x1EC],
        committed_minor=data[0x1ED],
        committed_major=data[0x1EE],
        launch_tcb_raw=u64(0x1F0),
        launch_mit_vector=u64(0x1F8) if v5 else 0,
        current_mit_vector=u64(0x200) if v5 else 0,
        signature_r=int.from_bytes(data[SIG_OFFSET : SIG_OFFSET + SIG_COMPONENT], "little"),
        signature_s=int.from_bytes(data[SIG_OFFSET + SIG_COMPONENT : SIG_OFFSET + 2 * SIG_COMPONENT], "little"),
        raw=data,
    )


def _fixed(value: bytes, size: int, name: str) -> bytes:
    value = bytes(value)
    if len(value) > size:
        raise ValueError(f"{name} is {len(value)} bytes, at most {size}")
    return value.ljust(size, b"\x00")


def encode_report(report: SnpReport, *, signed_only: bool = False) -> bytes:
    """Serialize ``report`` (the inverse of :func:`parse_report`); used by the simulator before signing."""
    buf = bytearray(REPORT_SIZE)
    struct.pack_into("<IIQ", buf, 0x00, report.version, report.guest_svn, report.policy)
    buf[0x10:0x20] = _fixed(report.family_id, 16, "family_id")
    buf[0x20:0x30] = _fixed(report.image_id, 16, "image_id")
    struct.pack_into("<IIQQI", buf, 0x30, report.vmpl, report.signature_algo, report.current_tcb_raw,
                     report.platform_info, report.flags)
    buf[0x50:0x90] = _fixed(report.report_data, 64, "report_data")
    buf[0x90:0xC0] = _fixed(report.measurement, 48, "measurement")
    buf[0xC0:0xE0] = _fixed(report.host_data, 32, "host_data")
    buf[0xE0:0x110] = _fixed(report.id_key_digest, 48, "id_key_digest")
    buf[0x110:0x140] = _fixed(report.author_key_digest, 48, "author_key_digest")
    buf[0x140:0x160] = _fixed(report.report_id, 32, "report_id")
    buf[0x160:0x180] = _fixed(report.report_id_ma, 32, "report_id_ma")
    struct.pack_into("<Q", buf, 0x180, report.reported_tcb_raw)
    if report.version >= 3:
        buf[0x188:0x18B] = bytes([report.cpuid_family, report.cpuid_model, report.cpuid_stepping])
    buf[0x1A0:0x1E0] = _fixed(report.chip_id, 64, "chip_id")
    struct.pack_into("<Q", buf, 0x1E0, report.committed_tcb_raw)
    buf[0x1E8:0x1EB] = bytes([report.current_build, report.current_minor, report.current_major])
    buf[0x1EC:0x1EF] = bytes([report.committed_build, report.committed_minor, report.committed_major])
    struct.pack_into("<Q", buf, 0x1F0, report.launch_tcb_raw)
    if report.version >= 5:
        struct.pack_into("<QQ", buf, 0x1F8, report.launch_mit_vector, report.current_mit_vector)
    if not signed_only:
        buf[SIG_OFFSET : SIG_OFFSET + SIG_COMPONENT] = report.signature_r.to_bytes(SIG_COMPONENT, "little")
        buf[SIG_OFFSET + SIG_COMPONENT : SIG_OFFSET + 2 * SIG_COMPONENT] = report.signature_s.to_bytes(
            SIG_COMPONENT, "little"
        )
    return bytes(buf)


def with_signature(report: SnpReport, r: int, s: int) -> SnpReport:
    """``report`` with signature (r, s) and ``raw`` re-encoded."""
    signed = replace(report, signature_r=r, signature_s=s)
    return replace(signed, raw=encode_report(signed))
