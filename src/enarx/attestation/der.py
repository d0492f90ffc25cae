"""A minimal DER *encoder*, enough to issue X.509 certificates and CRLs byte-for-byte as vendors do.

``cryptography``'s builders refuse some things real vendor PKIs do (AMD VCEKs carry serial number 0,
AMD writes the default RSASSA-PSS trailer field explicitly), so the simulator assembles
``TBSCertificate`` / ``TBSCertList`` itself with these helpers and only asks ``cryptography`` for the
signature. Parsing is done elsewhere (``asn1crypto``), never here.
"""

from __future__ import annotations

from datetime import UTC, datetime


def tlv(tag: int, content: bytes) -> bytes:
    """One DER tag-length-value; ``tag`` is the full identifier octet."""
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + content


def seq(*items: bytes) -> bytes:
    return tlv(0x30, b"".join(items))


def set_of(*items: bytes) -> bytes:
    return tlv(0x31, b"".join(sorted(items)))


def integer(value: int) -> bytes:
    if value == 0:
        return tlv(0x02, b"\x00")
    size = (value.bit_length() + 8) // 8  # room for the sign bit
    return tlv(0x02, value.to_bytes(size, "big", signed=True))


def boolean(value: bool) -> bytes:
    return tlv(0x01, b"\xff" if value else b"\x00")


def null() -> bytes:
    return b"\x05\x00"


def oid(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.split(".")]
    if len(parts) < 2:
        raise ValueError(f"bad OID {dotted!r}")
    body = bytearray()
    for arc in [parts[0] * 40 + parts[1], *parts[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return tlv(0x06, bytes(body))


def octet_string(value: bytes) -> bytes:
    return tlv(0x04, value)


def bit_string(value: bytes, unused_bits: int = 0) -> bytes:
    return tlv(0x03, bytes([unused_bits]) + value)


def utf8(value: str) -> bytes:
    return tlv(0x0C, value.encode())


def ia5(value: str) -> bytes:
    return tlv(0x16, value.encode("ascii"))


def printable(value: str) -> bytes:
    return tlv(0x13, value.encode("ascii"))


def explicit(number: int, content: bytes) -> bytes:
    """A constructed context-specific tag ``[number] EXPLICIT``."""
    return tlv(0xA0 | number, content)


def time(value: datetime) -> bytes:
    """UTCTime before 2050, GeneralizedTime after (RFC 5280 §4.1.2.5)."""
    value = value.astimezone(UTC)
    if value.year < 2050:
        return tlv(0x17, value.strftime("%y%m%d%H%M%SZ").encode())
    return tlv(0x18, value.strftime("%Y%m%d%H%M%SZ").encode())


_NAME_OIDS = {
    "CN": "2.5.4.3",
    "C": "2.5.4.6",
    "L": "2.5.4.7",
    "ST": "2.5.4.8",
    "O": "2.5.4.10",
    "OU": "2.5.4.11",
}


def name(rdns: list[tuple[str, str]]) -> bytes:
    """An X.501 Name, one attribute per RDN, in the order given (order is significant for matching).

    Country is a PrintableString, everything else UTF8String (as AMD and Intel issue them).
    """
    out = []
    for key, value in rdns:
        enc = printable(value) if key == "C" else utf8(value)
        out.append(set_of(seq(oid(_NAME_OIDS[key]), enc)))
    return seq(*out)


def extension(dotted: str, value: bytes, critical: bool = False) -> bytes:
    """An X.509 Extension whose ``extnValue`` octets are ``value`` (already DER, or raw for AMD hwID)."""
    parts = [oid(dotted)]
    if critical:
        parts.append(boolean(True))
    parts.append(octet_string(value))
    return seq(*parts)
