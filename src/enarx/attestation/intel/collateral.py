"""Intel DCAP collateral: TCB info (SGX/TDX, v2/v3), QE identity, PCK/root CRLs and signing chains.

Intel signs ``tcbInfo`` and ``enclaveIdentity`` with ECDSA-P256 over the *exact bytes* of the JSON member
value, so the raw substring is extracted and kept; nothing is re-serialized. Three layouts are accepted:

* Intel PCS documents: ``{"tcbInfo": {...}, "signature": "<r||s hex>"}`` and
  ``{"enclaveIdentity": {...}, "signature": "..."}``;
* a combined collateral object (dcap-qvl's layout) whose ``tcb_info`` / ``qe_identity`` are the member
  values as strings, with ``*_signature``, ``*_issuer_chain`` (PEM), ``pck_crl`` and ``root_ca_crl``
  (hex or PEM DER) beside them;
* certificates and CRLs already classified by :mod:`enarx.attestation.collateral` (the verifier reads
  those itself; this module only adds the ones embedded in JSON, as DER).

Malformed Intel documents raise :class:`MalformedEvidence` naming their source; JSON documents that are
not Intel collateral at all are ignored (a collateral directory may hold other vendors' files).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import re
import urllib.parse
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from enarx.attestation.model import MalformedEvidence, TcbStatus
from enarx.attestation.pki import Cert, CertificateFormatError, Crl, split_pem

_STATUS = {s.value: s for s in TcbStatus
           if s not in (TcbStatus.NOT_SUPPORTED, TcbStatus.UNKNOWN, TcbStatus.NOT_EVALUATED)}  # not Intel words
_MAX_DOC = 4 << 20


@dataclass(frozen=True)
class SignedBody:
    """A signed JSON member: its exact bytes, the r||s signature and where it came from."""

    raw: bytes
    signature: bytes
    source: str

    @functools.cached_property
    def digest(self) -> bytes:
        """Identifies the signed bytes and signature (the memo key of their verification)."""
        return hashlib.sha256(len(self.raw).to_bytes(8, "big") + self.raw + self.signature).digest()


@dataclass(frozen=True)
class TcbLevel:
    sgx_components: tuple[int, ...]  # 16 SVNs
    pcesvn: int
    tdx_components: tuple[int, ...] | None  # 16 SVNs (TDX TCB info only)
    tcb_date: datetime | None
    status: TcbStatus
    advisory_ids: tuple[str, ...]


@dataclass(frozen=True)
class IsvLevel:
    """A TCB level of an enclave or TDX module identity: keyed by ISV SVN only."""

    isvsvn: int
    tcb_date: datetime | None
    status: TcbStatus
    advisory_ids: tuple[str, ...]


@dataclass(frozen=True)
class TdxModuleIdentity:
    id: str
    mrsigner: bytes
    attributes: bytes
    attributes_mask: bytes
    levels: tuple[IsvLevel, ...] = ()


@dataclass(frozen=True)
class TcbInfo:
    id: str  # "SGX" or "TDX"
    version: int
    issue_date: datetime
    next_update: datetime
    fmspc: bytes
    pce_id: bytes
    tcb_type: int
    tcb_evaluation_data_number: int | None
    levels: tuple[TcbLevel, ...]
    tdx_module: TdxModuleIdentity | None
    tdx_module_identities: tuple[TdxModuleIdentity, ...]
    signed: SignedBody

    @property
    def name(self) -> str:
        return f"TCB info ({self.id} FMSPC {self.fmspc.hex()}, {self.signed.source})"


@dataclass(frozen=True)
class EnclaveIdentity:
    id: str  # "QE", "TD_QE", "QVE"
    version: int
    issue_date: datetime
    next_update: datetime
    tcb_evaluation_data_number: int | None
    miscselect: bytes  # 4 bytes, in the byte order of the report's MISCSELECT field
    miscselect_mask: bytes
    attributes: bytes
    attributes_mask: bytes
    mrsigner: bytes
    isvprodid: int
    levels: tuple[IsvLevel, ...]
    signed: SignedBody

    @property
    def name(self) -> str:
        return f"QE identity ({self.id}, {self.signed.source})"


def recency(item: TcbInfo | EnclaveIdentity) -> tuple[int, datetime]:
    """How new a TCB info or QE identity is: its evaluation data number, then its issue date. The one order
    both the verifier (a supplied item older than the store's is stale) and a store reload (no rollback) use."""
    return (item.tcb_evaluation_data_number or 0, item.issue_date)


@dataclass
class IntelCollateral:
    """What one Intel JSON document holds: TCB infos, QE identities, and embedded chains and CRLs (DER)."""

    tcb_infos: list[TcbInfo] = field(default_factory=list)
    qe_identities: list[EnclaveIdentity] = field(default_factory=list)
    certificates: list[bytes] = field(default_factory=list)
    crls: list[bytes] = field(default_factory=list)


# --------------------------------------------------------------------------------------------------
# exact-bytes JSON member extraction


def json_members(text: str, source: str) -> dict[str, tuple[Any, int, int]]:
    """Top-level members of a JSON object as ``{key: (value, start, end)}`` (character offsets of the
    value's exact text). Duplicate keys are rejected: they would make the signed bytes ambiguous."""
    dec = json.JSONDecoder()
    ws = re.compile(r"[ \t\n\r]*")
    pos = ws.match(text, 0).end()
    if pos >= len(text) or text[pos] != "{":
        raise MalformedEvidence(f"{source}: not a JSON object")
    pos = ws.match(text, pos + 1).end()
    out: dict[str, tuple[Any, int, int]] = {}
    if pos < len(text) and text[pos] == "}":
        pos += 1
    else:
        while True:
            if pos >= len(text) or text[pos] != '"':
                raise MalformedEvidence(f"{source}: expected a member name at offset {pos}")
            try:
                key, pos = json.decoder.scanstring(text, pos + 1)
            except (json.JSONDecodeError, ValueError) as exc:
                raise MalformedEvidence(f"{source}: bad member name: {exc}") from None
            pos = ws.match(text, pos).end()
            if pos >= len(text) or text[pos] != ":":
                raise MalformedEvidence(f"{source}: expected ':' at offset {pos}")
            pos = ws.match(text, pos + 1).end()
            try:
                value, end = dec.raw_decode(text, pos)
            except (json.JSONDecodeError, ValueError, RecursionError) as exc:
                raise MalformedEvidence(f"{source}: bad value of {key!r}: {exc}") from None
            if key in out:
                raise MalformedEvidence(f"{source}: duplicate member {key!r}")
            out[key] = (value, pos, end)
            pos = ws.match(text, end).end()
            if pos < len(text) and text[pos] == ",":
                pos = ws.match(text, pos + 1).end()
                continue
            if pos < len(text) and text[pos] == "}":
                pos += 1
                break
            raise MalformedEvidence(f"{source}: expected ',' or '}}' at offset {pos}")
    if text[pos:].strip(" \t\n\r\x00"):
        raise MalformedEvidence(f"{source}: trailing data after the JSON object")
    return out


def _decode_text(raw: bytes, source: str) -> str:
    if len(raw) > _MAX_DOC:
        raise MalformedEvidence(f"{source}: {len(raw)} bytes is too large for Intel collateral")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedEvidence(f"{source}: not UTF-8 JSON: {exc}") from None


def _signature(value: Any, source: str) -> bytes:
    if not isinstance(value, str):
        raise MalformedEvidence(f"{source}: signature is not a hex string")
    try:
        sig = bytes.fromhex(value)
    except ValueError:
        raise MalformedEvidence(f"{source}: signature is not hex") from None
    if len(sig) != 64:
        raise MalformedEvidence(f"{source}: signature is {len(sig)} bytes, expected 64 (r||s)")
    return sig


# --------------------------------------------------------------------------------------------------
# documents


def is_intel_document(raw: bytes) -> bool:
    """Cheap sniff for a JSON document this module understands."""
    if len(raw) > _MAX_DOC or raw.lstrip()[:1] != b"{":
        return False
    return any(k in raw for k in (b'"tcbInfo"', b'"enclaveIdentity"', b'"tcb_info"', b'"qe_identity"'))


def parse_document(raw: bytes, source: str = "collateral") -> IntelCollateral:
    """Parse one JSON document (PCS tcbInfo/enclaveIdentity or the combined layout)."""
    text = _decode_text(raw, source)
    members = json_members(text, source)
    out = IntelCollateral()
    if "tcbInfo" in members or "enclaveIdentity" in members:
        key = "tcbInfo" if "tcbInfo" in members else "enclaveIdentity"
        if "signature" not in members:
            raise MalformedEvidence(f"{source}: {key} without a signature")
        _, start, end = members[key]
        body_raw = text[start:end].encode("utf-8")
        signed = SignedBody(body_raw, _signature(members["signature"][0], source), source)
        if key == "tcbInfo":
            out.tcb_infos.append(parse_tcb_info_body(body_raw, signed))
        else:
            out.qe_identities.append(parse_enclave_identity_body(body_raw, signed))
        return out
    values = {k: v for k, (v, _, _) in members.items()}
    if "tcb_info" not in values and "qe_identity" not in values:
        raise MalformedEvidence(f"{source}: not Intel TCB info, QE identity or combined collateral")
    for body_key, sig_key, chain_key, kind in (
        ("tcb_info", "tcb_info_signature", "tcb_info_issuer_chain", "tcb"),
        ("qe_identity", "qe_identity_signature", "qe_identity_issuer_chain", "qe"),
    ):
        if body_key not in values:
            continue
        body = values[body_key]
        where = f"{source}#{body_key}"
        if isinstance(body, str):
            body_raw = body.encode("utf-8")
        else:
            # An embedded object: its exact text is what was signed.
            _, start, end = members[body_key]
            body_raw = text[start:end].encode("utf-8")
        if sig_key not in values:
            raise MalformedEvidence(f"{source}: {body_key} without {sig_key}")
        signed = SignedBody(body_raw, _signature(_hexish(values[sig_key]), where), where)
        if kind == "tcb":
            out.tcb_infos.append(parse_tcb_info_body(body_raw, signed))
        else:
            out.qe_identities.append(parse_enclave_identity_body(body_raw, signed))
        if chain_key in values:
            out.certificates.extend(parse_pem_chain(values[chain_key], f"{source}#{chain_key}"))
    for key in ("pck_crl_issuer_chain", "pck_certificate_chain", "pck_cert_chain"):
        if values.get(key):
            out.certificates.extend(parse_pem_chain(values[key], f"{source}#{key}"))
    for key in ("root_ca_crl", "pck_crl", "pck_processor_crl", "pck_platform_crl"):
        if values.get(key):
            out.crls.append(parse_crl(values[key], f"{source}#{key}"))
    return out


def _hexish(value: Any) -> Any:
    if isinstance(value, list) and all(isinstance(b, int) and 0 <= b < 256 for b in value):
        return bytes(value).hex()
    return value


def parse_pem_chain(value: Any, source: str) -> list[bytes]:
    """DER certificates of a PEM chain string (the PCS ``*-Issuer-Chain`` headers are URL-encoded)."""
    if not isinstance(value, str):
        raise MalformedEvidence(f"{source}: expected a PEM certificate chain string")
    if "%" in value and "-----BEGIN" not in value:
        value = urllib.parse.unquote(value)
    if "-----BEGIN CERTIFICATE-----" not in value:
        raise MalformedEvidence(f"{source}: no PEM certificate")
    try:
        ders = [der for label, der in split_pem(value.encode("ascii", "strict")) if label == "CERTIFICATE"]
        for der in ders:
            Cert.from_der(der)
    except (CertificateFormatError, UnicodeEncodeError) as exc:
        raise MalformedEvidence(f"{source}: bad PEM certificate chain: {exc}") from None
    return ders


def parse_crl(value: Any, source: str) -> bytes:
    """The DER of a CRL given as PEM, hex DER, base64 DER, a byte list or raw DER bytes."""
    try:
        if isinstance(value, list):
            value = bytes(value)
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("-----BEGIN"):
                blocks = [der for label, der in split_pem(text.encode("ascii")) if label == "X509 CRL"]
                if len(blocks) != 1:
                    raise ValueError("expected one PEM X509 CRL")
                value = blocks[0]
            elif re.fullmatch(r"(0x)?[0-9a-fA-F]+", text):
                value = bytes.fromhex(text.removeprefix("0x"))
            else:
                value = base64.b64decode(text, validate=True)
        if isinstance(value, (bytes, bytearray)):
            return Crl.from_der(bytes(value)).der
    except (ValueError, TypeError, binascii.Error, UnicodeEncodeError, CertificateFormatError) as exc:
        raise MalformedEvidence(f"{source}: bad CRL: {exc}") from None
    raise MalformedEvidence(f"{source}: bad CRL value")


# --------------------------------------------------------------------------------------------------
# typed bodies


def _obj(value: Any, what: str, source: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedEvidence(f"{source}: {what} is not an object")
    return value


def _get(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], source: str, default: Any = ...) -> Any:
    if key not in obj:
        if default is not ...:
            return default
        raise MalformedEvidence(f"{source}: missing {key!r}")
    value = obj[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise MalformedEvidence(f"{source}: {key!r} has the wrong type")
    if isinstance(value, int) and not isinstance(value, bool) and not (0 <= value < 1 << 64):
        raise MalformedEvidence(f"{source}: {key!r} out of range")
    return value


def _hex(obj: dict[str, Any], key: str, size: int | None, source: str, default: Any = ...) -> bytes:
    value = _get(obj, key, str, source, default)
    if value is None or isinstance(value, bytes):
        return value
    try:
        out = bytes.fromhex(value)
    except ValueError:
        raise MalformedEvidence(f"{source}: {key!r} is not hex") from None
    if size is not None and len(out) != size:
        raise MalformedEvidence(f"{source}: {key!r} is {len(out)} bytes, expected {size}")
    return out


def parse_time(value: Any, what: str, source: str) -> datetime:
    if not isinstance(value, str):
        raise MalformedEvidence(f"{source}: {what} is not a date string")
    try:
        when = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return when.astimezone(UTC)
    except (ValueError, OverflowError):
        raise MalformedEvidence(f"{source}: {what} {value[:40]!r} is not an ISO 8601 date") from None


def _status(value: Any, source: str) -> TcbStatus:
    if not isinstance(value, str) or value not in _STATUS:
        raise MalformedEvidence(f"{source}: unknown tcbStatus {value!r}")
    return _STATUS[value]


def _advisories(level: dict[str, Any], source: str) -> tuple[str, ...]:
    ids = level.get("advisoryIDs", [])
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise MalformedEvidence(f"{source}: advisoryIDs is not a list of strings")
    return tuple(ids)


def _svn(value: Any, what: str, source: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0xFFFF:
        raise MalformedEvidence(f"{source}: {what} is not an SVN")
    return value


def _components(value: Any, what: str, source: str) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) != 16:
        raise MalformedEvidence(f"{source}: {what} must list 16 components")
    return tuple(_svn(_obj(c, what, source).get("svn"), what, source) for c in value)


def _load_body(raw: bytes, source: str) -> dict[str, Any]:
    text = _decode_text(raw, source)
    # Re-scan with the strict member reader so duplicate keys are refused here too.
    members = json_members(text, source)
    return {k: v for k, (v, _, _) in members.items()}


def parse_tcb_info_body(raw: bytes, signed: SignedBody | None = None) -> TcbInfo:
    source = signed.source if signed else "tcbInfo"
    body = _load_body(raw, source)
    version = _get(body, "version", int, source)
    if version not in (2, 3):
        raise MalformedEvidence(f"{source}: unsupported tcbInfo version {version}")
    tid = _get(body, "id", str, source, "SGX")
    if tid not in ("SGX", "TDX"):
        raise MalformedEvidence(f"{source}: unknown tcbInfo id {tid!r}")
    levels = []
    raw_levels = _get(body, "tcbLevels", list, source)
    for i, lv in enumerate(raw_levels):
        where = f"{source} tcbLevels[{i}]"
        lv = _obj(lv, "TCB level", where)
        tcb = _obj(lv.get("tcb"), "tcb", where)
        if version == 2:
            sgx = tuple(_svn(tcb.get(f"sgxtcbcomp{n:02d}svn"), f"sgxtcbcomp{n:02d}svn", where) for n in range(1, 17))
            tdx = None
        else:
            sgx = _components(tcb.get("sgxtcbcomponents"), "sgxtcbcomponents", where)
            tdx = _components(tcb["tdxtcbcomponents"], "tdxtcbcomponents", where) if "tdxtcbcomponents" in tcb else None
            if tid == "TDX" and tdx is None:
                raise MalformedEvidence(f"{where}: TDX TCB level without tdxtcbcomponents")
        date = parse_time(lv["tcbDate"], "tcbDate", where) if "tcbDate" in lv else None
        levels.append(
            TcbLevel(sgx, _svn(tcb.get("pcesvn"), "pcesvn", where), tdx, date,
                     _status(lv.get("tcbStatus"), where), _advisories(lv, where))
        )
    tdx_module = None
    if "tdxModule" in body:
        tdx_module = _module_identity(_obj(body["tdxModule"], "tdxModule", source), "tdxModule", source)
    identities = []
    for i, ident in enumerate(_get(body, "tdxModuleIdentities", list, source, [])):
        where = f"{source} tdxModuleIdentities[{i}]"
        identities.append(_module_identity(_obj(ident, "identity", where), None, where))
    return TcbInfo(
        id=tid,
        version=version,
        issue_date=parse_time(body.get("issueDate"), "issueDate", source),
        next_update=parse_time(body.get("nextUpdate"), "nextUpdate", source),
        fmspc=_hex(body, "fmspc", 6, source),
        pce_id=_hex(body, "pceId", 2, source),
        tcb_type=_get(body, "tcbType", int, source, 0),
        tcb_evaluation_data_number=_get(body, "tcbEvaluationDataNumber", int, source, None),
        levels=tuple(levels),
        tdx_module=tdx_module,
        tdx_module_identities=tuple(identities),
        signed=signed or SignedBody(raw, b"", source),
    )


def _module_identity(obj: dict[str, Any], default_id: str | None, source: str) -> TdxModuleIdentity:
    ident = default_id if default_id is not None else _get(obj, "id", str, source)
    levels = _isv_levels(obj.get("tcbLevels", []), source)
    return TdxModuleIdentity(
        id=ident,
        mrsigner=_hex(obj, "mrsigner", 48, source),
        attributes=_hex(obj, "attributes", 8, source),
        attributes_mask=_hex(obj, "attributesMask", 8, source),
        levels=levels,
    )


def _isv_levels(value: Any, source: str) -> tuple[IsvLevel, ...]:
    if not isinstance(value, list):
        raise MalformedEvidence(f"{source}: tcbLevels is not a list")
    out = []
    for i, lv in enumerate(value):
        where = f"{source} tcbLevels[{i}]"
        lv = _obj(lv, "TCB level", where)
        tcb = _obj(lv.get("tcb"), "tcb", where)
        date = parse_time(lv["tcbDate"], "tcbDate", where) if "tcbDate" in lv else None
        out.append(IsvLevel(_svn(tcb.get("isvsvn"), "isvsvn", where), date,
                            _status(lv.get("tcbStatus"), where), _advisories(lv, where)))
    return tuple(out)


def parse_enclave_identity_body(raw: bytes, signed: SignedBody | None = None) -> EnclaveIdentity:
    source = signed.source if signed else "enclaveIdentity"
    body = _load_body(raw, source)
    version = _get(body, "version", int, source)
    if version != 2:
        raise MalformedEvidence(f"{source}: unsupported enclaveIdentity version {version}")
    return EnclaveIdentity(
        id=_get(body, "id", str, source),
        version=version,
        issue_date=parse_time(body.get("issueDate"), "issueDate", source),
        next_update=parse_time(body.get("nextUpdate"), "nextUpdate", source),
        tcb_evaluation_data_number=_get(body, "tcbEvaluationDataNumber", int, source, None),
        miscselect=_hex(body, "miscselect", 4, source),
        miscselect_mask=_hex(body, "miscselectMask", 4, source),
        attributes=_hex(body, "attributes", 16, source),
        attributes_mask=_hex(body, "attributesMask", 16, source),
        mrsigner=_hex(body, "mrsigner", 32, source),
        isvprodid=_get(body, "isvprodid", int, source),
        levels=_isv_levels(body.get("tcbLevels"), source),
        signed=signed or SignedBody(raw, b"", source),
    )
