"""Certificates, CRLs and chains, parsed without relying on ``cryptography``'s leniency.

AMD VCEK/VLEK certificates carry serial number 0, which RFC 5280 forbids and which ``cryptography``
only tolerates with a deprecation warning. Every field we need is therefore read with ``asn1crypto``
(which parses what is there), and ``cryptography`` is used for what it is good at: public keys and
signature verification over the exact ``tbs`` bytes.

Errors are typed: malformed DER raises :class:`CertificateFormatError`; chain problems raise
:class:`~enarx.attestation.model.VerificationError` with reason ``chain``, ``untrusted-root``,
``expired``, ``not-yet-valid`` or ``revoked``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, NoReturn

from asn1crypto import core as asn1_core
from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from cryptography import x509 as cx509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from enarx.attestation.model import AttestationError, Check, VerificationError

__all__ = [
    "Cert",
    "CertificateFormatError",
    "Crl",
    "build_path",
    "check_revocation",
    "check_validity",
    "split_pem",
    "verify_signed",
]

_HASHES = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
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


class CertificateFormatError(AttestationError):
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
    try:
        if algorithm.kind == "pss" and isinstance(public_key, rsa.RSAPublicKey):
            h = _HASHES[algorithm.hash_name]()
            public_key.verify(
                signature, tbs, padding.PSS(mgf=padding.MGF1(h), salt_length=algorithm.salt_length), h
            )
            return True
        if algorithm.kind == "pkcs1" and isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, tbs, padding.PKCS1v15(), _HASHES[algorithm.hash_name]())
            return True
        if algorithm.kind == "ecdsa" and isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, tbs, ec.ECDSA(_HASHES[algorithm.hash_name]()))
            return True
    except (InvalidSignature, ValueError, UnsupportedAlgorithm):
        return False
    return False


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

    @property
    def name(self) -> str:
        """The subject's common name (or the whole subject when it has none), for messages."""
        return short_name(self.subject)

    @property
    def issuer_name(self) -> str:
        return short_name(self.issuer)

    @property
    def self_issued(self) -> bool:
        return self.subject_der == self.issuer_der

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
    """An X.509 CRL read from its exact DER bytes."""

    der: bytes
    tbs: bytes
    algorithm: SignatureAlgorithm
    signature: bytes
    issuer_der: bytes
    issuer: str
    this_update: datetime
    next_update: datetime | None
    revoked: dict[int, datetime] = field(default_factory=dict)

    @classmethod
    def from_der(cls, der: bytes) -> Crl:
        try:
            parsed = asn1_crl.CertificateList.load(bytes(der), strict=True)
            tbs = parsed["tbs_cert_list"]
            revoked: dict[int, datetime] = {}
            for entry in tbs["revoked_certificates"] or []:
                revoked[int(entry["user_certificate"].native)] = _utc(entry["revocation_date"].native)
            next_update = tbs["next_update"].native
            return cls(
                der=bytes(der),
                tbs=tbs.dump(),
                algorithm=_sig_alg(parsed["signature_algorithm"]),
                signature=parsed["signature"].native,
                issuer_der=tbs["issuer"].dump(),
                issuer=_name_str(tbs["issuer"]),
                this_update=_utc(tbs["this_update"].native),
                next_update=_utc(next_update) if next_update else None,
                revoked=revoked,
            )
        except Exception as exc:  # noqa: BLE001 - asn1crypto/cryptography raise many types
            raise CertificateFormatError(f"not a DER X.509 CRL: {exc}") from None

    @classmethod
    def from_cryptography(cls, crl: Any) -> Crl:
        return cls.from_der(crl.public_bytes(serialization.Encoding.DER))

    def signed_by(self, issuer: Cert) -> bool:
        return verify_signed(issuer.public_key, self.algorithm, self.tbs, self.signature)

    @property
    def name(self) -> str:
        return short_name(self.issuer)

    def to_cryptography(self) -> Any | None:
        try:
            return cx509.load_der_x509_crl(self.der)
        except Exception:  # noqa: BLE001 - asn1crypto/cryptography raise many types
            return None

    def __repr__(self) -> str:
        nxt = f"{self.next_update:%Y-%m-%d}" if self.next_update else "?"
        return f"Crl({self.issuer!r}, {self.this_update:%Y-%m-%d}..{nxt}, {len(self.revoked)} revoked)"


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


# --- chains ---------------------------------------------------------------------------------------


def build_path(
    leaf: Cert,
    pool: Iterable[Cert],
    anchors: Iterable[Cert],
    *,
    max_depth: int = 6,
) -> tuple[list[Cert], Cert, list[Check]]:
    """Build and signature-check ``leaf → … → anchor``.

    Issuers are looked up by name in ``pool`` (the caller's certificates) and ``anchors``; the path ends
    at the first certificate that *is* an anchor (same DER, or same subject and key). A self-signed
    certificate that is not an anchor ends the path with ``untrusted-root``. Returns the path (leaf
    first, anchor last), the anchor, and one check per signature.
    """
    pool = list(pool)
    anchors = list(anchors)
    checks: list[Check] = []
    path = [leaf]
    current = leaf
    for _ in range(max_depth):
        anchor = next((a for a in anchors if a.same_as(current)), None)
        if anchor is not None:  # trusted as configured: its self-signature is checked when loaded
            checks.append(Check("chain.anchor", True, f"ends at trust anchor {anchor.name}"))
            return path, anchor, checks
        if current.self_issued and current.signed_by(current):
            checks.append(
                Check("chain.anchor", False, f"root {current.name} is not a trust anchor",
                      expected="a built-in vendor root or --trust-anchor", actual=f"sha256:{current.sha256}")
            )
            raise VerificationError(
                f"certificate chain ends at {current.name} (sha256 {current.sha256[:16]}…), "
                "which is not a trust anchor",
                reason="untrusted-root",
                checks=checks,
            )
        candidates = [c for c in pool + anchors if c.subject_der == current.issuer_der and c is not current]
        if not candidates:
            checks.append(Check("chain.issuer", False, f"no issuer {current.issuer_name} for {current.name}"))
            raise VerificationError(
                f"certificate chain broken: issuer {current.issuer_name!r} of {current.name!r} not found "
                "among the supplied certificates or trust anchors",
                reason="chain",
                checks=checks,
            )
        issuer = next((c for c in candidates if current.signed_by(c)), None)
        if issuer is not None and not issuer.is_ca and not any(a.same_as(issuer) for a in anchors):
            # a leaf key (e.g. a leaked VCEK) must not be able to mint certificates
            checks.append(Check(f"chain.ca[{issuer.name}]", False, "issuer is not a CA (basicConstraints)",
                                expected="cA=TRUE", actual="not a CA"))
            raise VerificationError(f"{current.name!r} is signed by {issuer.name!r}, which is not a CA",
                                    reason="chain", checks=checks)
        if issuer is None:
            checks.append(Check(f"chain.signature[{current.name}]", False, f"not signed by {current.issuer_name}"))
            raise VerificationError(
                f"signature on {current.name!r} does not verify with the key of {current.issuer_name!r}",
                reason="chain",
                checks=checks,
            )
        checks.append(Check(f"chain.signature[{current.name}]", True, f"signed by {issuer.name}"))
        path.append(issuer)
        current = issuer
    raise VerificationError("certificate chain too long", reason="chain", checks=checks)


def _refuse(checks: list[Check], name: str, detail: str, message: str, reason: str, *,
            expected: str | None = None, actual: str | None = None) -> NoReturn:
    """Record the failed check and raise, so the error carries every check made so far."""
    checks.append(Check(name, False, detail, expected=expected, actual=actual))
    raise VerificationError(message, reason=reason, checks=checks)


def check_validity(path: list[Cert], at: datetime) -> list[Check]:
    """Every certificate must be valid at ``at``; the error names the certificate and the date."""
    checks = []
    for cert in path:
        if at > cert.not_after:
            _refuse(checks, f"validity[{cert.name}]", "expired",
                    f"certificate {cert.name!r} expired on {cert.not_after.isoformat()} "
                    f"(verification time {at.isoformat()})", "expired",
                    expected=f"notAfter >= {at.isoformat()}", actual=cert.not_after.isoformat())
        if at < cert.not_before:
            _refuse(checks, f"validity[{cert.name}]", "not yet valid",
                    f"certificate {cert.name!r} is not valid before {cert.not_before.isoformat()} "
                    f"(verification time {at.isoformat()})", "not-yet-valid",
                    expected=f"notBefore <= {at.isoformat()}", actual=cert.not_before.isoformat())
        checks.append(Check(f"validity[{cert.name}]", True,
                            f"{cert.not_before.isoformat()} .. {cert.not_after.isoformat()}"))
    return checks


def check_revocation(path: list[Cert], crls: Iterable[Crl], at: datetime) -> tuple[list[Check], list[str], list[Crl]]:
    """Check each non-anchor certificate of ``path`` against the CRLs its issuer signed.

    A CRL applies when its issuer name is the certificate's issuer and the issuer's key verifies it. An
    applicable CRL outside its window at ``at`` is an ``expired`` error; a listed serial is ``revoked``.
    Returns checks, warnings (certificates no CRL covered) and the CRLs used.
    """
    checks: list[Check] = []
    warnings_: list[str] = []
    used: list[Crl] = []
    crls = list(crls)
    for cert, issuer in itertools.pairwise(path):
        applicable = [c for c in crls if c.issuer_der == issuer.subject_der]
        if not applicable:
            warnings_.append(f"revocation of {cert.name} not checked: no CRL from {issuer.name} supplied")
            continue
        for crl in applicable:
            if not crl.signed_by(issuer):
                checks.append(Check(f"crl.signature[{crl.name}]", False, "CRL signature does not verify"))
                raise VerificationError(
                    f"CRL claiming issuer {crl.name!r} is not signed by that issuer's key",
                    reason="signature",
                    checks=checks,
                )
            if crl.next_update is not None and at > crl.next_update:
                _refuse(checks, f"crl.validity[{crl.name}]", "CRL expired",
                        f"CRL from {crl.name!r} expired on {crl.next_update.isoformat()} "
                        f"(nextUpdate; verification time {at.isoformat()})", "expired",
                        expected=f"nextUpdate >= {at.isoformat()}", actual=crl.next_update.isoformat())
            if at < crl.this_update:
                _refuse(checks, f"crl.validity[{crl.name}]", "CRL not yet valid",
                        f"CRL from {crl.name!r} is not valid before {crl.this_update.isoformat()} "
                        f"(verification time {at.isoformat()})", "not-yet-valid",
                        expected=f"thisUpdate <= {at.isoformat()}", actual=crl.this_update.isoformat())
            when = crl.revoked.get(cert.serial)
            if when is not None and when <= at:
                checks.append(Check(f"revocation[{cert.name}]", False, f"revoked on {when.isoformat()}",
                                    expected="not listed", actual=f"serial {cert.serial:#x} listed"))
                raise VerificationError(
                    f"certificate {cert.name!r} (serial {cert.serial:#x}) was revoked by {crl.name!r} "
                    f"on {when.isoformat()}",
                    reason="revoked",
                    checks=checks,
                )
            used.append(crl)
            checks.append(Check(f"revocation[{cert.name}]", True, f"not listed in CRL of {crl.name}"))
    return checks, warnings_, used
