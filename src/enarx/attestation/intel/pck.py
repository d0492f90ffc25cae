"""The Intel SGX extensions of a PCK certificate (OID 1.2.840.113741.1.13.1).

The extension value is ``SEQUENCE OF SEQUENCE { OBJECT IDENTIFIER, ANY }``; the TCB entry nests 16
component SVNs, the PCESVN and the CPUSVN the same way. A small strict DER reader is used so that a
malformed extension is reported as such rather than half-parsed.
"""

from __future__ import annotations

from dataclasses import dataclass

from enarx.attestation.model import MalformedEvidence
from enarx.attestation.pki import Cert

_ARC = "1.2.840.113741.1.13.1"
_PPID = _ARC + ".1"
_TCB = _ARC + ".2"
_PCEID = _ARC + ".3"
_FMSPC = _ARC + ".4"
_SGX_TYPE = _ARC + ".5"
_PLATFORM_INSTANCE_ID = _ARC + ".6"

_TAG_INTEGER, _TAG_OCTETS, _TAG_OID, _TAG_ENUM, _TAG_SEQ = 0x02, 0x04, 0x06, 0x0A, 0x30


@dataclass(frozen=True)
class PckExtensions:
    """What Intel's PCK certificate says about the platform it was issued to."""

    ppid: bytes | None
    tcb_components: tuple[int, ...]  # 16 SGX TCB component SVNs
    pcesvn: int
    cpusvn: bytes
    pce_id: bytes
    fmspc: bytes
    sgx_type: int | None
    platform_instance_id: bytes | None


def pck_extensions(cert: Cert) -> PckExtensions:
    """Parse the SGX extensions of ``cert``; :class:`MalformedEvidence` if absent or malformed."""
    value = cert.extensions.get(_ARC)
    if value is None:
        raise MalformedEvidence(f"PCK certificate {cert.subject}: no SGX extensions")
    return parse_sgx_extensions(value)


def has_sgx_extensions(cert: Cert) -> bool:
    return _ARC in cert.extensions


def parse_sgx_extensions(der: bytes) -> PckExtensions:
    entries = _entries(der, "SGX extensions")
    if _TCB not in entries or _FMSPC not in entries or _PCEID not in entries:
        raise MalformedEvidence("PCK SGX extensions: TCB, FMSPC or PCE-ID missing")
    tag, tcb_der = entries[_TCB]
    if tag != _TAG_SEQ:
        raise MalformedEvidence("PCK SGX extensions: TCB is not a SEQUENCE")
    tcb = _entries(_wrap_seq(tcb_der), "SGX TCB")
    comps = []
    for i in range(1, 17):
        comps.append(_int(tcb, f"{_TCB}.{i}", f"TCB component {i}"))
    pcesvn = _int(tcb, f"{_TCB}.17", "PCESVN")
    cpusvn = _octets(tcb, f"{_TCB}.18", "CPUSVN", 16)
    fmspc = _octets(entries, _FMSPC, "FMSPC", 6)
    pce_id = _octets(entries, _PCEID, "PCE-ID", 2)
    ppid = _octets(entries, _PPID, "PPID", 16) if _PPID in entries else None
    sgx_type = None
    if _SGX_TYPE in entries and entries[_SGX_TYPE][0] in (_TAG_ENUM, _TAG_INTEGER):
        sgx_type = int.from_bytes(entries[_SGX_TYPE][1], "big") if entries[_SGX_TYPE][1] else 0
    pid = entries[_PLATFORM_INSTANCE_ID][1] if _PLATFORM_INSTANCE_ID in entries else None
    return PckExtensions(ppid, tuple(comps), pcesvn, cpusvn, pce_id, fmspc, sgx_type, pid)


def _wrap_seq(content: bytes) -> bytes:
    return bytes([_TAG_SEQ]) + _encode_len(len(content)) + content


def _encode_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def _entries(der: bytes, what: str) -> dict[str, tuple[int, bytes]]:
    """SEQUENCE OF SEQUENCE { OID, value } → {oid: (tag, content)}; duplicates are malformed."""
    tag, content, rest = _tlv(der, what)
    if tag != _TAG_SEQ or rest:
        raise MalformedEvidence(f"{what}: expected one SEQUENCE")
    out: dict[str, tuple[int, bytes]] = {}
    while content:
        etag, entry, content = _tlv(content, what)
        if etag != _TAG_SEQ:
            raise MalformedEvidence(f"{what}: entry is not a SEQUENCE")
        otag, oid, entry = _tlv(entry, what)
        if otag != _TAG_OID:
            raise MalformedEvidence(f"{what}: entry does not start with an OID")
        vtag, value, entry = _tlv(entry, what)
        if entry:
            raise MalformedEvidence(f"{what}: trailing bytes in an entry")
        name = _oid(oid, what)
        if name in out:
            raise MalformedEvidence(f"{what}: duplicate {name}")
        out[name] = (vtag, value)
    return out


def _tlv(data: bytes, what: str) -> tuple[int, bytes, bytes]:
    if len(data) < 2:
        raise MalformedEvidence(f"{what}: truncated DER")
    tag, first = data[0], data[1]
    if tag & 0x1F == 0x1F:
        raise MalformedEvidence(f"{what}: multi-byte DER tags are not expected")
    pos = 2
    if first < 0x80:
        length = first
    else:
        n = first & 0x7F
        if n == 0 or n > 4 or len(data) < 2 + n:
            raise MalformedEvidence(f"{what}: bad DER length")
        length = int.from_bytes(data[2 : 2 + n], "big")
        pos += n
    if pos + length > len(data):
        raise MalformedEvidence(f"{what}: truncated DER value")
    return tag, data[pos : pos + length], data[pos + length :]


def _oid(content: bytes, what: str) -> str:
    if not content or content[-1] & 0x80:
        raise MalformedEvidence(f"{what}: bad OID")
    arcs: list[int] = []
    value = 0
    for byte in content:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = arcs[0]
    head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    return ".".join(str(a) for a in head + arcs[1:])


def _int(entries: dict[str, tuple[int, bytes]], oid: str, what: str) -> int:
    if oid not in entries:
        raise MalformedEvidence(f"PCK SGX extensions: {what} missing")
    tag, value = entries[oid]
    if tag not in (_TAG_INTEGER, _TAG_ENUM) or not value:
        raise MalformedEvidence(f"PCK SGX extensions: {what} is not an INTEGER")
    return int.from_bytes(value, "big", signed=True)


def _octets(entries: dict[str, tuple[int, bytes]], oid: str, what: str, size: int) -> bytes:
    if oid not in entries:
        raise MalformedEvidence(f"PCK SGX extensions: {what} missing")
    tag, value = entries[oid]
    if tag != _TAG_OCTETS or len(value) != size:
        raise MalformedEvidence(f"PCK SGX extensions: {what} is not a {size}-byte OCTET STRING")
    return value
