"""Byte layouts of Intel DCAP ECDSA quotes (SGX v3, TDX v4 and v5): bytes ↔ typed structs, nothing else.

All integers are little-endian. Layout summary (offsets in bytes)::

    header (48)   version u16 | att_key_type u16 | tee_type u32 | qe_svn u16 | pce_svn u16
                  | qe_vendor_id [16] | user_data [20]
    body          v3: SGX report body (384)          v4: TD 1.0 report body (584)
                  v5: body_type u16 (2 = TD1.0, 3 = TD1.5) | body_size u32 | body
    sig_len u32, then signature data:
      v3     ecdsa_sig [64] | att_key [64] | qe_report [384] | qe_report_sig [64]
             | qe_auth_len u16 | qe_auth | cert_type u16 | cert_size u32 | cert_data
      v4/v5  ecdsa_sig [64] | att_key [64] | cert_type u16 (6) | cert_size u32 | QE report cert data,
             which itself is qe_report | qe_report_sig | qe_auth | nested cert data (type 5)

Bytes after the declared signature data are tolerated (several real quotes arrive in larger,
zero-padded buffers); anything missing raises :class:`MalformedEvidence` naming the field.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from enarx.attestation.model import MalformedEvidence

INTEL_QE_VENDOR_ID = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")

HEADER_LEN = 48
SGX_REPORT_BODY_LEN = 384
TD10_REPORT_BODY_LEN = 584
TD15_REPORT_BODY_LEN = 648

ATT_KEY_TYPE_ECDSA_P256 = 2
ATT_KEY_TYPE_ECDSA_P384 = 3
TEE_TYPE_SGX = 0x00000000
TEE_TYPE_TDX = 0x00000081

BODY_TYPE_SGX = 1
BODY_TYPE_TD10 = 2
BODY_TYPE_TD15 = 3

CERT_TYPE_PPID_CLEARTEXT = 1
CERT_TYPE_PPID_RSA2048 = 2
CERT_TYPE_PPID_RSA3072 = 3
CERT_TYPE_PCK_CLEARTEXT = 4
CERT_TYPE_PCK_CHAIN = 5
CERT_TYPE_QE_REPORT = 6
CERT_TYPE_PLATFORM_MANIFEST = 7

_PPID_LEN = {CERT_TYPE_PPID_CLEARTEXT: 16, CERT_TYPE_PPID_RSA2048: 256, CERT_TYPE_PPID_RSA3072: 384}

# Anything larger than this is not a quote (guards against absurd lengths in fuzzed input).
MAX_QUOTE_LEN = 1 << 20


class _Reader:
    """A cursor over bytes that raises MalformedEvidence naming the field that ran short."""

    def __init__(self, data: bytes, context: str, base: int = 0):
        self.data = data
        self.pos = 0
        self.context = context
        self.base = base

    def take(self, n: int, field: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise MalformedEvidence(
                f"{self.context}: truncated {field} at offset {self.base + self.pos}: "
                f"need {n} bytes, {len(self.data) - self.pos} available"
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u16(self, field: str) -> int:
        return struct.unpack("<H", self.take(2, field))[0]

    def u32(self, field: str) -> int:
        return struct.unpack("<I", self.take(4, field))[0]

    def remaining(self) -> bytes:
        return self.data[self.pos :]


@dataclass(frozen=True)
class QuoteHeader:
    version: int
    att_key_type: int
    tee_type: int
    qe_svn: int
    pce_svn: int
    qe_vendor_id: bytes
    user_data: bytes
    raw: bytes

    @classmethod
    def parse(cls, data: bytes) -> QuoteHeader:
        r = _Reader(data, "quote header")
        raw = r.take(HEADER_LEN, "header")
        version, akt, tee, qe_svn, pce_svn = struct.unpack_from("<HHIHH", raw, 0)
        return cls(version, akt, tee, qe_svn, pce_svn, raw[12:28], raw[28:48], raw)

    def pack(self) -> bytes:
        return (
            struct.pack("<HHIHH", self.version, self.att_key_type, self.tee_type, self.qe_svn, self.pce_svn)
            + self.qe_vendor_id
            + self.user_data
        )


@dataclass(frozen=True)
class SgxReportBody:
    """The 384-byte SGX REPORTBODY (also the layout of the QE report)."""

    cpusvn: bytes
    misc_select: int
    isv_ext_prod_id: bytes
    attributes: bytes  # 16 bytes: flags u64 | xfrm u64
    mrenclave: bytes
    mrsigner: bytes
    config_id: bytes
    isv_prod_id: int
    isv_svn: int
    config_svn: int
    isv_family_id: bytes
    report_data: bytes
    raw: bytes

    @property
    def flags(self) -> int:
        return int.from_bytes(self.attributes[:8], "little")

    @property
    def xfrm(self) -> int:
        return int.from_bytes(self.attributes[8:], "little")

    @property
    def debug(self) -> bool:
        return bool(self.flags & 0x2)

    @classmethod
    def parse(cls, raw: bytes, context: str = "SGX report body") -> SgxReportBody:
        if len(raw) != SGX_REPORT_BODY_LEN:
            raise MalformedEvidence(f"{context}: {len(raw)} bytes, expected {SGX_REPORT_BODY_LEN}")
        return cls(
            cpusvn=raw[0:16],
            misc_select=struct.unpack_from("<I", raw, 16)[0],
            isv_ext_prod_id=raw[32:48],
            attributes=raw[48:64],
            mrenclave=raw[64:96],
            mrsigner=raw[128:160],
            config_id=raw[192:256],
            isv_prod_id=struct.unpack_from("<H", raw, 256)[0],
            isv_svn=struct.unpack_from("<H", raw, 258)[0],
            config_svn=struct.unpack_from("<H", raw, 260)[0],
            isv_family_id=raw[304:320],
            report_data=raw[320:384],
            raw=bytes(raw),
        )

    @staticmethod
    def build(
        *,
        cpusvn: bytes = bytes(16),
        misc_select: int = 0,
        attributes: bytes = bytes(16),
        mrenclave: bytes = bytes(32),
        mrsigner: bytes = bytes(32),
        isv_prod_id: int = 0,
        isv_svn: int = 0,
        report_data: bytes = bytes(64),
    ) -> bytes:
        out = bytearray(SGX_REPORT_BODY_LEN)
        out[0:16] = _fixed(cpusvn, 16, "cpusvn")
        struct.pack_into("<I", out, 16, misc_select)
        out[48:64] = _fixed(attributes, 16, "attributes")
        out[64:96] = _fixed(mrenclave, 32, "mrenclave")
        out[128:160] = _fixed(mrsigner, 32, "mrsigner")
        struct.pack_into("<HH", out, 256, isv_prod_id, isv_svn)
        out[320:384] = _fixed(report_data, 64, "report_data")
        return bytes(out)


@dataclass(frozen=True)
class TdReportBody:
    """TD quote body: TD 1.0 (584 bytes) or TD 1.5 (648 bytes, adds tee_tcb_svn2 and mrservicetd)."""

    tee_tcb_svn: bytes
    mrseam: bytes
    mrsignerseam: bytes
    seam_attributes: bytes
    td_attributes: bytes
    xfam: bytes
    mrtd: bytes
    mrconfigid: bytes
    mrowner: bytes
    mrownerconfig: bytes
    rtmrs: tuple[bytes, bytes, bytes, bytes]
    report_data: bytes
    tee_tcb_svn2: bytes | None
    mrservicetd: bytes | None
    raw: bytes

    @property
    def debug(self) -> bool:
        return bool(self.td_attributes[0] & 0x1)

    @property
    def is_td15(self) -> bool:
        return self.tee_tcb_svn2 is not None

    @classmethod
    def parse(cls, raw: bytes, context: str = "TD report body") -> TdReportBody:
        if len(raw) not in (TD10_REPORT_BODY_LEN, TD15_REPORT_BODY_LEN):
            raise MalformedEvidence(
                f"{context}: {len(raw)} bytes, expected {TD10_REPORT_BODY_LEN} or {TD15_REPORT_BODY_LEN}"
            )
        td15 = len(raw) == TD15_REPORT_BODY_LEN
        return cls(
            tee_tcb_svn=raw[0:16],
            mrseam=raw[16:64],
            mrsignerseam=raw[64:112],
            seam_attributes=raw[112:120],
            td_attributes=raw[120:128],
            xfam=raw[128:136],
            mrtd=raw[136:184],
            mrconfigid=raw[184:232],
            mrowner=raw[232:280],
            mrownerconfig=raw[280:328],
            rtmrs=(raw[328:376], raw[376:424], raw[424:472], raw[472:520]),
            report_data=raw[520:584],
            tee_tcb_svn2=raw[584:600] if td15 else None,
            mrservicetd=raw[600:648] if td15 else None,
            raw=bytes(raw),
        )

    @staticmethod
    def build(
        *,
        tee_tcb_svn: bytes = bytes(16),
        mrseam: bytes = bytes(48),
        mrsignerseam: bytes = bytes(48),
        seam_attributes: bytes = bytes(8),
        td_attributes: bytes = bytes(8),
        xfam: bytes = bytes(8),
        mrtd: bytes = bytes(48),
        mrconfigid: bytes = bytes(48),
        mrowner: bytes = bytes(48),
        mrownerconfig: bytes = bytes(48),
        rtmrs: tuple[bytes, ...] = (bytes(48),) * 4,
        report_data: bytes = bytes(64),
        tee_tcb_svn2: bytes | None = None,
        mrservicetd: bytes | None = None,
    ) -> bytes:
        if len(rtmrs) != 4:
            raise ValueError("exactly four RTMRs")
        out = (
            _fixed(tee_tcb_svn, 16, "tee_tcb_svn")
            + _fixed(mrseam, 48, "mrseam")
            + _fixed(mrsignerseam, 48, "mrsignerseam")
            + _fixed(seam_attributes, 8, "seam_attributes")
            + _fixed(td_attributes, 8, "td_attributes")
            + _fixed(xfam, 8, "xfam")
            + _fixed(mrtd, 48, "mrtd")
            + _fixed(mrconfigid, 48, "mrconfigid")
            + _fixed(mrowner, 48, "mrowner")
            + _fixed(mrownerconfig, 48, "mrownerconfig")
            + b"".join(_fixed(r, 48, f"rtmr{i}") for i, r in enumerate(rtmrs))
            + _fixed(report_data, 64, "report_data")
        )
        if tee_tcb_svn2 is not None or mrservicetd is not None:
            out += _fixed(tee_tcb_svn2 or bytes(16), 16, "tee_tcb_svn2")
            out += _fixed(mrservicetd or bytes(48), 48, "mrservicetd")
        return out


@dataclass(frozen=True)
class CertificationData:
    """Certification data: a type and its payload; type 6 nests a QE report and more certification data."""

    cert_type: int
    data: bytes
    qe_report_data: QeReportCertificationData | None = None

    @property
    def pem_chain(self) -> bytes | None:
        """The PEM PCK chain (type 5), looking through a type-6 wrapper."""
        if self.cert_type == CERT_TYPE_PCK_CHAIN:
            return self.data
        if self.qe_report_data is not None:
            return self.qe_report_data.certification_data.pem_chain
        return None

    @property
    def ppid_info(self) -> PpidInfo | None:
        """PPID, CPUSVN, PCESVN, PCE-ID for types 1..3 (the PCK certificate must come from collateral)."""
        inner = self.qe_report_data.certification_data if self.qe_report_data is not None else self
        if inner.cert_type not in _PPID_LEN:
            return None
        n = _PPID_LEN[inner.cert_type]
        r = _Reader(inner.data, f"certification data type {inner.cert_type}")
        ppid = r.take(n, "ppid")
        cpusvn = r.take(16, "cpusvn")
        pcesvn = r.u16("pcesvn")
        # The PCE-ID follows in some encodings (and is absent in others, e.g. Intel's QVL samples).
        pce_id = r.take(2, "pce_id") if len(r.remaining()) >= 2 else None
        return PpidInfo(inner.cert_type, ppid, cpusvn, pcesvn, pce_id)

    @classmethod
    def read(cls, r: _Reader, context: str, depth: int = 0) -> CertificationData:
        cert_type = r.u16(f"{context} type")
        size = r.u32(f"{context} size")
        data = r.take(size, f"{context} (type {cert_type}, {size} bytes)")
        if cert_type == CERT_TYPE_QE_REPORT:
            if depth > 0:
                raise MalformedEvidence(f"{context}: nested QE report certification data")
            inner = _Reader(data, f"{context} QE report certification data", r.base + r.pos - size)
            qe = QeReportCertificationData.read(inner, depth + 1)
            return cls(cert_type, data, qe)
        if cert_type in _PPID_LEN:
            # Validate the fixed layout now so a short payload is a parse error, not a later surprise.
            need = _PPID_LEN[cert_type] + 18
            if size < need:
                raise MalformedEvidence(f"{context}: type {cert_type} payload {size} bytes, expected {need}")
        elif cert_type not in (CERT_TYPE_PCK_CLEARTEXT, CERT_TYPE_PCK_CHAIN, CERT_TYPE_PLATFORM_MANIFEST):
            raise MalformedEvidence(f"{context}: unknown certification data type {cert_type}")
        return cls(cert_type, data)

    def pack(self) -> bytes:
        return struct.pack("<HI", self.cert_type, len(self.data)) + self.data


@dataclass(frozen=True)
class PpidInfo:
    cert_type: int
    ppid: bytes
    cpusvn: bytes
    pcesvn: int
    pce_id: bytes | None


@dataclass(frozen=True)
class QeReportCertificationData:
    qe_report: bytes  # raw 384 bytes, the region the PCK signs
    qe_report_signature: bytes  # r || s, 64 bytes
    qe_auth_data: bytes
    certification_data: CertificationData

    @property
    def qe_report_body(self) -> SgxReportBody:
        return SgxReportBody.parse(self.qe_report, "QE report")

    @classmethod
    def read(cls, r: _Reader, depth: int) -> QeReportCertificationData:
        qe_report = r.take(SGX_REPORT_BODY_LEN, "QE report")
        qe_sig = r.take(64, "QE report signature")
        auth_len = r.u16("QE auth data size")
        auth = r.take(auth_len, "QE auth data")
        cert = CertificationData.read(r, "certification data", depth)
        return cls(qe_report, qe_sig, auth, cert)

    def pack(self) -> bytes:
        return (
            self.qe_report
            + self.qe_report_signature
            + struct.pack("<H", len(self.qe_auth_data))
            + self.qe_auth_data
            + self.certification_data.pack()
        )


@dataclass(frozen=True)
class Quote:
    """A parsed DCAP ECDSA quote. ``signed_region`` is header + body, what the attestation key signs."""

    header: QuoteHeader
    body_type: int
    body: SgxReportBody | TdReportBody
    signed_region: bytes
    signature: bytes  # r || s over signed_region, by att_key
    attestation_key: bytes  # raw x || y (P-256)
    qe: QeReportCertificationData
    length: int  # bytes consumed; anything after is padding
    v3_cert_data: CertificationData | None = None

    @property
    def is_tdx(self) -> bool:
        return self.header.tee_type == TEE_TYPE_TDX

    @property
    def certification_data(self) -> CertificationData:
        return self.qe.certification_data


def looks_like_quote(data: bytes) -> bool:
    """Cheap sniff: a DCAP ECDSA quote header with a known version/TEE type and Intel's QE vendor id."""
    if len(data) < HEADER_LEN:
        return False
    version, akt, tee = struct.unpack_from("<HHI", data, 0)
    if version not in (3, 4, 5) or akt not in (ATT_KEY_TYPE_ECDSA_P256, ATT_KEY_TYPE_ECDSA_P384):
        return False
    if tee not in (TEE_TYPE_SGX, TEE_TYPE_TDX):
        return False
    return data[12:28] == INTEL_QE_VENDOR_ID


def parse_quote(data: bytes) -> Quote:
    """Parse a v3 (SGX), v4 or v5 (SGX/TDX) ECDSA-P256 quote; trailing bytes are ignored."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MalformedEvidence("quote: expected bytes")
    data = bytes(data)
    if len(data) > MAX_QUOTE_LEN:
        raise MalformedEvidence(f"quote: {len(data)} bytes is larger than any DCAP quote")
    r = _Reader(data, "quote")
    header = QuoteHeader.parse(r.take(HEADER_LEN, "header"))
    if header.version not in (3, 4, 5):
        raise MalformedEvidence(f"quote: unsupported version {header.version}")
    if header.att_key_type != ATT_KEY_TYPE_ECDSA_P256:
        raise MalformedEvidence(f"quote: unsupported attestation key type {header.att_key_type}")
    if header.tee_type not in (TEE_TYPE_SGX, TEE_TYPE_TDX):
        raise MalformedEvidence(f"quote: unknown TEE type {header.tee_type:#x}")
    if header.version == 3 and header.tee_type != TEE_TYPE_SGX:
        raise MalformedEvidence("quote: version 3 quotes are SGX only")

    body: SgxReportBody | TdReportBody
    if header.version == 5:
        body_type = r.u16("body type")
        body_size = r.u32("body size")
        expected = {BODY_TYPE_SGX: SGX_REPORT_BODY_LEN, BODY_TYPE_TD10: TD10_REPORT_BODY_LEN,
                    BODY_TYPE_TD15: TD15_REPORT_BODY_LEN}.get(body_type)
        if expected is None:
            raise MalformedEvidence(f"quote: unknown v5 body type {body_type}")
        if body_size != expected:
            raise MalformedEvidence(f"quote: v5 body type {body_type} has size {body_size}, expected {expected}")
        if (body_type == BODY_TYPE_SGX) != (header.tee_type == TEE_TYPE_SGX):
            raise MalformedEvidence(f"quote: body type {body_type} does not match TEE type {header.tee_type:#x}")
    elif header.tee_type == TEE_TYPE_SGX:
        body_type, body_size = BODY_TYPE_SGX, SGX_REPORT_BODY_LEN
    else:
        body_type, body_size = BODY_TYPE_TD10, TD10_REPORT_BODY_LEN
    raw_body = r.take(body_size, "report body")
    body = SgxReportBody.parse(raw_body) if body_type == BODY_TYPE_SGX else TdReportBody.parse(raw_body)
    signed_region = data[: r.pos]

    sig_len = r.u32("signature data length")
    sig_data = r.take(sig_len, f"signature data ({sig_len} bytes)")
    sr = _Reader(sig_data, "signature data", r.pos - sig_len)
    signature = sr.take(64, "quote signature")
    att_key = sr.take(64, "attestation key")
    v3_cert: CertificationData | None = None
    if header.version == 3:
        qe_report = sr.take(SGX_REPORT_BODY_LEN, "QE report")
        qe_sig = sr.take(64, "QE report signature")
        auth_len = sr.u16("QE auth data size")
        auth = sr.take(auth_len, "QE auth data")
        v3_cert = CertificationData.read(sr, "certification data", depth=1)
        qe = QeReportCertificationData(qe_report, qe_sig, auth, v3_cert)
    else:
        cert = CertificationData.read(sr, "certification data")
        if cert.qe_report_data is None:
            raise MalformedEvidence(
                f"quote: v{header.version} certification data type {cert.cert_type}, expected 6 (QE report)"
            )
        qe = cert.qe_report_data
    return Quote(
        header=header,
        body_type=body_type,
        body=body,
        signed_region=signed_region,
        signature=signature,
        attestation_key=att_key,
        qe=qe,
        length=r.pos,
        v3_cert_data=v3_cert,
    )


def build_quote(
    header: QuoteHeader,
    body: bytes,
    signature: bytes,
    attestation_key: bytes,
    qe: QeReportCertificationData,
    body_type: int | None = None,
) -> bytes:
    """Serialize a quote (the inverse of :func:`parse_quote`); used by the simulator."""
    head = header.pack()
    if header.version == 5:
        if body_type is None:
            body_type = BODY_TYPE_TD15 if len(body) == TD15_REPORT_BODY_LEN else BODY_TYPE_TD10
        head += struct.pack("<HI", body_type, len(body))
    sig = _fixed(signature, 64, "signature") + _fixed(attestation_key, 64, "attestation key")
    if header.version == 3:
        sig += qe.pack()
    else:
        sig += CertificationData(CERT_TYPE_QE_REPORT, qe.pack()).pack()
    return head + body + struct.pack("<I", len(sig)) + sig


def signed_region_of(quote_bytes: bytes) -> bytes:
    """Header + body of a serialized quote (what the attestation key signs)."""
    version = struct.unpack_from("<H", quote_bytes, 0)[0]
    tee = struct.unpack_from("<I", quote_bytes, 4)[0]
    if version == 5:
        size = struct.unpack_from("<I", quote_bytes, HEADER_LEN + 2)[0]
        return quote_bytes[: HEADER_LEN + 6 + size]
    size = SGX_REPORT_BODY_LEN if tee == TEE_TYPE_SGX else TD10_REPORT_BODY_LEN
    return quote_bytes[: HEADER_LEN + size]


def _fixed(value: bytes, n: int, name: str) -> bytes:
    if len(value) != n:
        raise ValueError(f"{name}: {len(value)} bytes, expected {n}")
    return bytes(value)
