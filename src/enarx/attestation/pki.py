"""Certificates, CRLs and chains, parsed without relying on ``cryptography``'s leniency.

AMD VCEK/VLEK certificates carry serial number 0, which RFC 5280 forbids and which ``cryptography``
only tolerates with a deprecation warning. Every field we need is therefore read with ``asn1crypto``
(which parses what is there), and ``cryptography`` is used for what it is good at: public keys and
signature verification over the exact ``tbs`` bytes.

Malformed DER raises :class:`CertificateFormatError`. Paths (chains to an anchor, validity, CRLs) are
:mod:`enarx.attestation.chain`'s job: this module only parses.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from asn1crypto import core as asn1_core
from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from cryptography import x509 as cx509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from enarx.attestation import crypto
from enarx.attestation.model import MalformedEvidence

__all__ = ["Cert", "CertificateFormatError", "Crl", "split_pem", "verify_signed"]

_PSS = "1.2.840.113549.1.1.10"
_RSA_PKCS1 = {
    "1.2.840.113549.1.1.11": "sha256",
    "1.2.840.113549.1.1.12": "sha384",
    "1.2.840.113549.1.1.13": "sha512",
}
_ECDSA = {
    "1.2.840.10045.4.3.2": "sha256",
    "1.2.840.10045.4.3.3": "sha384",
    "1.2.840.10045.4.3.4": "sha512",
}


class CertificateFormatError(MalformedEvidence):
    """Bytes that should be a certificate or CRL but do not parse as one."""

    reason = "parse"


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class SignatureAlgorithm:
    oid: str
    hash_name: str
    kind: str  # "pss" | "pkcs1" | "ecdsa"
    salt_length: int | None = None

    @cached_property
    def scheme(self) -> crypto.Scheme:
        return crypto.Scheme(self.kind, self.hash_name, self.salt_length)


def _sig_alg(algo: Any) -> SignatureAlgorithm:
    dotted = algo["algorithm"].dotted
    if dotted == _PSS:
        params = algo["parameters"]
        hash_name = params["hash_algorithm"]["algorithm"].native
        mgf_hash = params["mask_gen_algorithm"]["parameters"]["algorithm"].native
        if mgf_hash != hash_name:
            raise CertificateFormatError(f"RSASSA-PSS with MGF1-{mgf_hash} over {hash_name} is not supported")
        return SignatureAlgorithm(dotted, hash_name, "pss", int(params["salt_length"].native))
    if dotted in _RSA_PKCS1:
        return SignatureAlgorithm(dotted, _RSA_PKCS1[dotted], "pkcs1")
    if dotted in _ECDSA:
        return SignatureAlgorithm(dotted, _ECDSA[dotted], "ecdsa")
    return SignatureAlgorithm(dotted, "", "unknown")


def verify_signed(public_key: Any, algorithm: SignatureAlgorithm, tbs: bytes, signature: bytes) -> bool:
    """Whether ``signature`` over ``tbs`` verifies with ``public_key`` under ``algorithm``."""
    return crypto.verify(public_key, algorithm.scheme, tbs, signature)


@dataclass(eq=False)
class Cert:
    """An X.509 certificate: the fields verification needs, read from the exact DER bytes."""

    der: bytes
    tbs: bytes
    algorithm: SignatureAlgorithm
    signature: bytes
    subject_der: bytes
    issuer_der: bytes
    subject: str
    issuer: str
    serial: int
    not_before: datetime
    not_after: datetime
    spki: bytes
    extensions: dict[str, bytes] = field(default_factory=dict)  # OID -> extnValue octets
    is_ca: bool = False

    @classmethod
    def from_der(cls, der: bytes) -> Cert:
        try:
            parsed = asn1_x509.Certificate.load(bytes(der), strict=True)
            tbs = parsed["tbs_certificate"]
            exts: dict[str, bytes] = {}
            is_ca = False
            for ext in tbs["extensions"] or []:
                dotted = ext["extn_id"].dotted
                exts[dotted] = ext["extn_value"].contents
                if dotted == "2.5.29.19":
                    is_ca = bool(ext["extn_value"].parsed["ca"].native)
            validity = tbs["validity"]
            return cls(
                der=bytes(der),
                tbs=tbs.dump(),
                algorithm=_sig_alg(parsed["signature_algorithm"]),
                signature=parsed["signature_value"].native,
                subject_der=tbs["subject"].dump(),
                issuer_der=tbs["issuer"].dump(),
                subject=_name_str(tbs["subject"]),
                issuer=_name_str(tbs["issuer"]),
                serial=int(tbs["serial_number"].native),
                not_before=_utc(validity["not_before"].native),
                not_after=_utc(validity["not_after"].native),
                spki=tbs["subject_public_key_info"].dump(),
                extensions=exts,
                is_ca=is_ca,
            )
        except CertificateFormatError:
            raise
        except Exception as exc:  # noqa: BLE001 - asn1crypto raises ValueError, TypeError, KeyError…
            raise CertificateFormatError(f"not a DER X.509 certificate: {exc}") from None

    @classmethod
    def from_cryptography(cls, cert: Any) -> Cert:
        return cls.from_der(cert.public_bytes(serialization.Encoding.DER))

    @cached_property
    def public_key(self) -> Any:
        try:
            return serialization.load_der_public_key(self.spki)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise CertificateFormatError(f"{self.subject}: unusable public key: {exc}") from None

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.der).hexdigest()

    @cached_property
    def spki_sha256(self) -> str:
        return hashlib.sha256(self.spki).hexdigest()

    @cached_property
    def name(self) -> str:
        """The subject's common name (or the whole subject when it has none), for messages."""
        return short_name(self.subject)

    @cached_property
    def issuer_name(self) -> str:
        return short_name(self.issuer)

    @property
    def self_issued(self) -> bool:
        return self.subject_der == self.issuer_der

    @cached_property
    def subject_key_id(self) -> bytes | None:
        """SubjectKeyIdentifier (RFC 5280 §4.2.1.2), when present."""
        value = extension_value(self, "2.5.29.14")
        return value if isinstance(value, bytes) else None

    @cached_property
    def authority_key_id(self) -> bytes | None:
        """The keyIdentifier of AuthorityKeyIdentifier (RFC 5280 §4.2.1.1), when present."""
        raw = self.extensions.get("2.5.29.35")
        if raw is None:
            return None
        try:
            value = asn1_x509.AuthorityKeyIdentifier.load(raw, strict=True)["key_identifier"].native
        except Exception:  # noqa: BLE001 - a malformed AKI only means "match by signature"
            return None
        return value if isinstance(value, bytes) else None

    def may_have_issued(self, child: Cert) -> bool:
        """Whether this certificate's name and key identifier allow it to be ``child``'s issuer.

        Matching by key, not only by name, means a test root that reuses a vendor's name is never even
        tried against the vendor's certificates (and the other way round)."""
        if child.issuer_der != self.subject_der:
            return False
        aki, ski = child.authority_key_id, self.subject_key_id
        return aki is None or ski is None or aki == ski

    def signed_by(self, issuer: Cert) -> bool:
        return verify_signed(issuer.public_key, self.algorithm, self.tbs, self.signature)

    def same_as(self, other: Cert) -> bool:
        """Same subject and same key: the same CA, even if re-encoded or re-issued."""
        return self.der == other.der or (self.subject_der == other.subject_der and self.spki == other.spki)

    def to_cryptography(self) -> Any | None:
        """A ``cryptography`` certificate, or ``None`` where ``cryptography`` refuses the encoding."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return cx509.load_der_x509_certificate(self.der)
            except Exception:  # noqa: BLE001 - asn1crypto/cryptography raise many types
                return None

    def pem(self) -> bytes:
        return _pem("CERTIFICATE", self.der)

    def __repr__(self) -> str:
        return f"Cert({self.subject!r}, serial={self.serial}, {self.not_before:%Y-%m-%d}..{self.not_after:%Y-%m-%d})"


@dataclass(eq=False)
class Crl:
    """An X.509 CRL read from its exact DER bytes.

    The revoked entries are looked up on demand (:meth:`revoked_on`), never expanded into Python
    objects: a CRL with tens of thousands of entries costs one lookup, not one object per entry."""

    der: bytes
    tbs: bytes
    algorithm: SignatureAlgorithm
    signature: bytes
    issuer_der: bytes
    issuer: str
    this_update: datetime
    next_update: datetime | None
    number: int | None = None  # cRLNumber extension
    authority_key_id: bytes | None = None  # keyIdentifier of the authorityKeyIdentifier extension

    @classmethod
    def from_der(cls, der: bytes) -> Crl:
        try:
            parsed = asn1_crl.CertificateList.load(bytes(der), strict=True)
            tbs = parsed["tbs_cert_list"]
            next_update = tbs["next_update"].native
            number = aki = None
            for ext in tbs["crl_extensions"] or []:
                if ext["extn_id"].dotted == "2.5.29.20":
                    number = int(ext["extn_value"].parsed.native)
                elif ext["extn_id"].dotted == "2.5.29.35":
                    aki = ext["extn_value"].parsed["key_identifier"].native
            return cls(
                der=bytes(der),
                tbs=tbs.dump(),
                algorithm=_sig_alg(parsed["signature_algorithm"]),
                signature=parsed["signature"].native,
                issuer_der=tbs["issuer"].dump(),
                issuer=_name_str(tbs["issuer"]),
                this_update=_utc(tbs["this_update"].native),
                next_update=_utc(next_update) if next_update else None,
                number=number,
                authority_key_id=aki if isinstance(aki, bytes) else None,
            )
        except Exception as exc:  # noqa: BLE001 - asn1crypto/cryptography raise many types
            raise CertificateFormatError(f"not a DER X.509 CRL: {exc}") from None

    @classmethod
    def from_cryptography(cls, crl: Any) -> Crl:
        return cls.from_der(crl.public_bytes(serialization.Encoding.DER))

    def signed_by(self, issuer: Cert) -> bool:
        return verify_signed(issuer.public_key, self.algorithm, self.tbs, self.signature)

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.der).hexdigest()

    def newer_than(self, other: Crl) -> bool:
        """Issued after ``other`` (by cRLNumber when both carry one, else by thisUpdate)."""
        if self.number is not None and other.number is not None and self.number != other.number:
            return self.number > other.number
        return self.this_update > other.this_update

    @cached_property
    def _lookup(self) -> Any:
        return cx509.load_der_x509_crl(self.der)

    def revoked_on(self, serial: int) -> datetime | None:
        """When ``serial`` was revoked by this CRL, or ``None``. Malformed entries raise
        :class:`CertificateFormatError` (a CRL that cannot be read is never "not revoked")."""
        try:
            entry = self._lookup.get_revoked_certificate_by_serial_number(serial)
            return None if entry is None else _utc(entry.revocation_date_utc)
        except Exception as exc:  # noqa: BLE001 - cryptography raises ValueError & co. on bad entries
            raise CertificateFormatError(f"CRL from {self.name!r}: unreadable revoked entries: {exc}") from None

    @cached_property
    def name(self) -> str:
        return short_name(self.issuer)

    def to_cryptography(self) -> Any | None:
        try:
            return cx509.load_der_x509_crl(self.der)
        except Exception:  # noqa: BLE001 - asn1crypto/cryptography raise many types
            return None

    def __repr__(self) -> str:
        nxt = f"{self.next_update:%Y-%m-%d}" if self.next_update else "?"
        return f"Crl({self.issuer!r}, {self.this_update:%Y-%m-%d}..{nxt})"


_SHORT = {
    "common_name": "CN",
    "organizational_unit_name": "OU",
    "organization_name": "O",
    "locality_name": "L",
    "state_or_province_name": "ST",
    "country_name": "C",
}


def short_name(subject: str) -> str:
    for part in subject.split(","):
        if part.startswith("CN="):
            return part[3:]
    return subject


def _name_str(name: Any) -> str:
    parts = []
    for rdn in name.chosen:
        for attr in rdn:
            key = attr["type"].native
            try:
                value = attr["value"].native
            except Exception:  # noqa: BLE001 - asn1crypto/cryptography raise many types
                value = attr["value"].contents.hex()
            parts.append(f"{_SHORT.get(key, key)}={value}")
    return ",".join(parts)


def _pem(label: str, der: bytes) -> bytes:
    b64 = base64.b64encode(der).decode()
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return (f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n").encode()


_PEM_RE = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)


def split_pem(data: bytes) -> list[tuple[str, bytes]]:
    """Every PEM block in ``data`` as (label, DER). Raises :class:`CertificateFormatError` on bad base64."""
    out = []
    for match in _PEM_RE.finditer(data):
        body = re.sub(rb"\s+", b"", match.group(2))
        try:
            out.append((match.group(1).decode(), base64.b64decode(body, validate=True)))
        except (binascii.Error, ValueError) as exc:
            raise CertificateFormatError(f"bad base64 in PEM {match.group(1).decode()} block: {exc}") from None
    return out


def pem(label: str, der: bytes) -> bytes:
    return _pem(label, der)


def extension_value(cert: Cert, dotted: str) -> Any:
    """The decoded value of an extension whose octets are one DER value (INTEGER, IA5String…)."""
    raw = cert.extensions.get(dotted)
    if raw is None:
        return None
    try:
        return asn1_core.Asn1Value.load(raw, strict=True).native
    except Exception:  # noqa: BLE001 - asn1crypto/cryptography raise many types
        return raw
