"""Test PKIs for the simulators: keys, CA certificates, leaf certificates and CRLs, in vendor formats.

Shared by every simulator (SEV-SNP here; Intel SGX/TDX in :mod:`enarx.attestation.simulate.intel`):

* :func:`rsa_key` / :func:`ec_key` — test keys; RSA keys are cached per role for the process because
  RSA-4096 generation costs about a second and the keys prove nothing anyway;
* :func:`issue_certificate` — any X.509 v3 certificate, assembled with :mod:`enarx.attestation.der` so
  that vendor quirks can be reproduced (AMD's serial 0, explicit RSASSA-PSS trailer field, raw-octet
  extensions such as AMD's hwID, Intel's SGX extension SEQUENCE passed as ``extensions``);
* :func:`issue_crl` — a v2 CRL with revoked serials, CRL number and authority key identifier;
* :class:`TestCA` — a CA (key + certificate) that issues the above in one call;
* :data:`RSA_PSS_SHA384`, :data:`ECDSA_SHA256`, :data:`ECDSA_SHA384` — signature algorithm names.

Everything issued here is signed by *test* keys. Vendor roots never verify it; a verifier trusts it only
when its root is given explicitly (``--trust-anchor``), and every such verdict carries a warning.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from enarx.attestation import der

RSA_PSS_SHA384 = "rsa-pss-sha384"
ECDSA_SHA256 = "ecdsa-sha256"
ECDSA_SHA384 = "ecdsa-sha384"

OID_RSASSA_PSS = "1.2.840.113549.1.1.10"
OID_SHA384 = "2.16.840.1.101.3.4.2.2"
OID_MGF1 = "1.2.840.113549.1.1.8"
OID_ECDSA_SHA256 = "1.2.840.10045.4.3.2"
OID_ECDSA_SHA384 = "1.2.840.10045.4.3.3"

Name = list[tuple[str, str]]  # [("CN", "ARK-Milan"), …] in encoding order

_RSA_CACHE: dict[tuple[str, int], rsa.RSAPrivateKey] = {}


def rsa_key(role: str = "default", bits: int = 4096, *, fresh: bool = False) -> rsa.RSAPrivateKey:
    """A test RSA key, reused per (role, size) within the process unless ``fresh``."""
    if fresh:
        return rsa.generate_private_key(public_exponent=65537, key_size=bits)
    key = _RSA_CACHE.get((role, bits))
    if key is None:
        key = _RSA_CACHE[(role, bits)] = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key


def ec_key(curve: str = "secp384r1") -> ec.EllipticCurvePrivateKey:
    curves = {"secp256r1": ec.SECP256R1(), "secp384r1": ec.SECP384R1()}
    return ec.generate_private_key(curves[curve])


def algorithm_identifier(algorithm: str) -> bytes:
    """DER AlgorithmIdentifier. RSASSA-PSS is written as AMD writes it, trailer field included."""
    if algorithm == RSA_PSS_SHA384:
        sha384 = der.seq(der.oid(OID_SHA384), der.null())
        params = der.seq(
            der.explicit(0, sha384),
            der.explicit(1, der.seq(der.oid(OID_MGF1), sha384)),
            der.explicit(2, der.integer(48)),
            der.explicit(3, der.integer(1)),
        )
        return der.seq(der.oid(OID_RSASSA_PSS), params)
    if algorithm == ECDSA_SHA256:
        return der.seq(der.oid(OID_ECDSA_SHA256))
    if algorithm == ECDSA_SHA384:
        return der.seq(der.oid(OID_ECDSA_SHA384))
    raise ValueError(f"unknown signature algorithm {algorithm!r}")


def algorithm_for(key: Any) -> str:
    """The signature algorithm a vendor uses with such a key: RSASSA-PSS/SHA-384 (AMD) or ECDSA."""
    if isinstance(key, rsa.RSAPrivateKey):
        return RSA_PSS_SHA384
    return ECDSA_SHA384 if key.curve.name == "secp384r1" else ECDSA_SHA256


def sign(data: bytes, key: Any, algorithm: str) -> bytes:
    if algorithm == RSA_PSS_SHA384:
        return key.sign(data, padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48), hashes.SHA384())
    if algorithm == ECDSA_SHA256:
        return key.sign(data, ec.ECDSA(hashes.SHA256()))
    if algorithm == ECDSA_SHA384:
        return key.sign(data, ec.ECDSA(hashes.SHA384()))
    raise ValueError(f"unknown signature algorithm {algorithm!r}")


def spki(public_key: Any) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_identifier(public_key: Any) -> bytes:
    """RFC 5280 method 1: SHA-1 of the subjectPublicKey BIT STRING contents."""
    raw = public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    ) if isinstance(public_key, ec.EllipticCurvePublicKey) else public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.PKCS1
    )
    return hashlib.sha1(raw).digest()


def basic_constraints(ca: bool, path_len: int | None = None) -> bytes:
    items = [der.boolean(True)] if ca else []
    if ca and path_len is not None:
        items.append(der.integer(path_len))
    return der.extension("2.5.29.19", der.seq(*items), critical=True)


def key_usage(cert_sign: bool) -> bytes:
    # keyCertSign + cRLSign for CAs, digitalSignature for leaves
    bits = b"\x06" if cert_sign else b"\x80"
    unused = 1 if cert_sign else 7
    return der.extension("2.5.29.15", der.bit_string(bits, unused), critical=True)


def subject_key_id(public_key: Any) -> bytes:
    return der.extension("2.5.29.14", der.octet_string(key_identifier(public_key)))


def authority_key_id(issuer_public_key: Any) -> bytes:
    return der.extension("2.5.29.35", der.seq(der.tlv(0x80, key_identifier(issuer_public_key))))


def crl_distribution_point(url: str) -> bytes:
    uri = der.tlv(0x86, url.encode())
    return der.extension("2.5.29.31", der.seq(der.seq(der.explicit(0, der.explicit(0, uri)))))


def issue_certificate(
    *,
    subject: Name,
    issuer: Name,
    public_key: Any,
    signing_key: Any,
    algorithm: str,
    serial: int,
    not_before: datetime,
    not_after: datetime,
    extensions: list[bytes] = (),  # type: ignore[assignment]
) -> bytes:
    """A DER X.509 v3 certificate. ``extensions`` are complete DER ``Extension`` values."""
    alg = algorithm_identifier(algorithm)
    parts = [
        der.explicit(0, der.integer(2)),
        der.integer(serial),
        alg,
        der.name(issuer),
        der.seq(der.time(not_before), der.time(not_after)),
        der.name(subject),
        spki(public_key),
    ]
    if extensions:
        parts.append(der.explicit(3, der.seq(*extensions)))
    tbs = der.seq(*parts)
    return der.seq(tbs, alg, der.bit_string(sign(tbs, signing_key, algorithm)))


def issue_crl(
    *,
    issuer: Name,
    signing_key: Any,
    algorithm: str,
    this_update: datetime,
    next_update: datetime | None,
    revoked: list[tuple[int, datetime]] = (),  # type: ignore[assignment]
    crl_number: int = 1,
    authority_key: Any = None,
) -> bytes:
    """A DER X.509 v2 CRL listing ``revoked`` (serial, revocation date). ``authority_key`` overrides the
    public key named in the authorityKeyIdentifier (to forge a CRL for tests)."""
    alg = algorithm_identifier(algorithm)
    parts = [der.integer(1), alg, der.name(issuer), der.time(this_update)]
    if next_update is not None:  # optional in X.509; a CRL without it cannot be shown current
        parts.append(der.time(next_update))
    if revoked:
        parts.append(der.seq(*(der.seq(der.integer(s), der.time(when)) for s, when in revoked)))
    exts = [authority_key_id(authority_key or signing_key.public_key()),
            der.extension("2.5.29.20", der.integer(crl_number))]
    parts.append(der.explicit(0, der.seq(*exts)))
    tbs = der.seq(*parts)
    return der.seq(tbs, alg, der.bit_string(sign(tbs, signing_key, algorithm)))


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass
class TestCA:
    """A test certificate authority: name, key and its certificate (DER), able to issue and revoke."""

    name: Name
    key: Any
    certificate: bytes
    algorithm: str
    issued: list[bytes] = field(default_factory=list)

    __test__ = False  # not a pytest class

    @classmethod
    def root(
        cls,
        name: Name,
        *,
        key: Any | None = None,
        algorithm: str = ECDSA_SHA256,
        serial: int = 1,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        path_len: int | None = None,
        extra_extensions: list[bytes] = (),  # type: ignore[assignment]
    ) -> TestCA:
        key = key or (rsa_key("root") if algorithm == RSA_PSS_SHA384 else ec_key(
            "secp384r1" if algorithm == ECDSA_SHA384 else "secp256r1"))
        not_before = not_before or now() - timedelta(days=1)
        not_after = not_after or not_before + timedelta(days=365 * 25)
        cert = issue_certificate(
            subject=name, issuer=name, public_key=key.public_key(), signing_key=key, algorithm=algorithm,
            serial=serial, not_before=not_before, not_after=not_after,
            extensions=[key_usage(True), subject_key_id(key.public_key()), basic_constraints(True, path_len),
                        *extra_extensions],
        )
        return cls(name, key, cert, algorithm)

    def issue(
        self,
        name: Name,
        public_key: Any,
        *,
        serial: int,
        ca: bool = False,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        extensions: list[bytes] | None = None,
        path_len: int | None = None,
    ) -> bytes:
        """A certificate for ``public_key`` signed by this CA (standard CA/leaf extensions unless given)."""
        not_before = not_before or now() - timedelta(days=1)
        not_after = not_after or not_before + timedelta(days=365 * 7)
        if extensions is None:
            extensions = [subject_key_id(public_key), authority_key_id(self.key.public_key()),
                          basic_constraints(ca, path_len) if ca else basic_constraints(False), key_usage(ca)]
        cert = issue_certificate(subject=name, issuer=self.name, public_key=public_key, signing_key=self.key,
                                 algorithm=self.algorithm, serial=serial, not_before=not_before,
                                 not_after=not_after, extensions=extensions)
        self.issued.append(cert)
        return cert

    def sub_ca(self, name: Name, *, key: Any | None = None, serial: int = 2, **kw: Any) -> TestCA:
        key = key or ec_key("secp256r1")
        cert = self.issue(name, key.public_key(), serial=serial, ca=True, **kw)
        return TestCA(name, key, cert, self.algorithm)

    def crl(
        self,
        revoked: list[tuple[int, datetime]] = (),  # type: ignore[assignment]
        *,
        this_update: datetime | None = None,
        next_update: datetime | None = None,
        crl_number: int = 1,
    ) -> bytes:
        this_update = this_update or now() - timedelta(hours=1)
        next_update = next_update or this_update + timedelta(days=30)
        return issue_crl(issuer=self.name, signing_key=self.key, algorithm=self.algorithm,
                         this_update=this_update, next_update=next_update, revoked=list(revoked),
                         crl_number=crl_number)

    def pem(self) -> bytes:
        from enarx.attestation.pki import pem

        return pem("CERTIFICATE", self.certificate)
