"""Trust anchors, each bound to the evidence formats it may vouch for.

A chain is accepted only when it ends at an anchor bound to the format being verified: AMD's ARK of the
product for ``snp``, the Intel SGX Root CA for ``sgx`` and ``tdx``, the AWS Nitro root for ``nitro``, the
NVIDIA Device Identity CA for ``nvidia``. A Nitro document under an AMD chain is refused, whoever signed it.

*Test anchors* (``--trust-anchor``, the Steward's ``--insecure-trust-anchor``) are bound the same way:

* by naming the formats, ``FORMATS=FILE`` (``snp=ark.pem``, ``sgx,tdx=root.pem``);
* otherwise by what the certificate is: its subject (or, for an intermediate, its issuer) follows a
  vendor's naming *and* its key is the vendor's kind (``ARK-Milan``/``-Genoa``/``-Turin`` with an RSA key →
  ``snp``; ``Intel SGX Root CA`` with a P-256 key → ``sgx``, ``tdx``; ``aws.nitro-enclaves`` with P-384 →
  ``nitro``; ``NVIDIA Device Identity CA`` with P-384 → ``nvidia``). The simulators name their test roots
  this way, so their anchors bind themselves. Anything else must be named, or it is refused.

Every verdict that relied on a test anchor says so (``Provenance.test_anchor``) and warns.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from enarx.attestation.model import AttestationError
from enarx.attestation.pki import Cert, CertificateFormatError, split_pem

FORMAT_NAMES = ("snp", "sgx", "tdx", "nitro", "nvidia")
PRODUCTS = ("Milan", "Genoa", "Turin")


class AnchorError(AttestationError):
    """A trust anchor that cannot be read or cannot be bound to an evidence format."""

    reason = "anchor"


@dataclass(frozen=True)
class Anchor:
    """A certificate accepted as the end of a chain, for these formats only."""

    cert: Cert
    formats: frozenset[str]
    test: bool = False
    product: str | None = None  # the AMD product of an ARK

    @property
    def name(self) -> str:
        return self.cert.name

    def is_cert(self, cert: Cert) -> bool:
        """``cert`` is this anchor (same DER, or same subject and key)."""
        return cert.same_as(self.cert)

    def describe(self) -> str:
        kind = "test anchor" if self.test else "vendor root"
        return f"{kind} {self.name!r} (for {', '.join(sorted(self.formats))})"


@dataclass(frozen=True)
class TrustAnchors:
    """The vendor roots and any explicitly configured test anchors."""

    anchors: tuple[Anchor, ...] = ()
    intermediates: tuple[Cert, ...] = field(default=())  # non-root certificates given with test anchors

    @cached_property
    def fingerprint(self) -> str:
        """Identifies these anchors and their bindings (part of cache keys)."""
        parts = sorted(f"{a.cert.sha256}:{','.join(sorted(a.formats))}:{a.test}" for a in self.anchors)
        parts += sorted(c.sha256 for c in self.intermediates)
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()

    @cached_property
    def _index(self) -> dict[tuple[bytes, bytes], list[Anchor]]:
        index: dict[tuple[bytes, bytes], list[Anchor]] = {}
        for a in self.anchors:
            index.setdefault((a.cert.subject_der, a.cert.spki), []).append(a)
        return index

    def find(self, cert: Cert) -> list[Anchor]:
        """The anchors ``cert`` is (same subject and key; its re-encodings included)."""
        return self._index.get((cert.subject_der, cert.spki), [])

    def for_format(self, fmt: str) -> list[Anchor]:
        return [a for a in self.anchors if fmt in a.formats]

    def not_for(self, fmt: str) -> list[Anchor]:
        return [a for a in self.anchors if fmt not in a.formats]

    @property
    def test(self) -> list[Anchor]:
        return [a for a in self.anchors if a.test]

    def with_test(self, certs: list[Any], formats: frozenset[str] | set[str] | None = None) -> TrustAnchors:
        """These anchors plus ``certs`` as test anchors, bound to ``formats`` (inferred when ``None``)."""
        added = tuple(bind_test_anchor(as_cert(c), formats) for c in certs)
        return TrustAnchors(self.anchors + added, self.intermediates)


def as_cert(value: Any) -> Cert:
    """A :class:`Cert` from a ``Cert``, DER/PEM bytes or a ``cryptography`` certificate."""
    if isinstance(value, Cert):
        return value
    if isinstance(value, (bytes, bytearray)):
        data = bytes(value)
        if b"-----BEGIN" in data:
            ders = [der for label, der in split_pem(data) if label == "CERTIFICATE"]
            if len(ders) != 1:
                raise CertificateFormatError("expected exactly one PEM certificate")
            data = ders[0]
        return Cert.from_der(data)
    from cryptography.hazmat.primitives import serialization

    return Cert.from_der(value.public_bytes(serialization.Encoding.DER))


_ARK = re.compile(r"(?:^|,)CN=ARK-(Milan|Genoa|Turin)(?:,|$)")


def infer_formats(cert: Cert) -> tuple[frozenset[str], str | None]:
    """The formats (and AMD product) a certificate's name and key kind fit; empty when none fits."""
    key = cert.public_key
    for name in (cert.subject, cert.issuer):
        ark = _ARK.search(name)
        if ark and "O=Advanced Micro Devices" in name and isinstance(key, rsa.RSAPublicKey):
            return frozenset({"snp"}), ark.group(1)
        cn = _cn(name)
        if cn == "Intel SGX Root CA" and _curve(key) == "secp256r1":
            return frozenset({"sgx", "tdx"}), None
        if cn == "aws.nitro-enclaves" and _curve(key) == "secp384r1":
            return frozenset({"nitro"}), None
        if cn == "NVIDIA Device Identity CA" and _curve(key) == "secp384r1":
            return frozenset({"nvidia"}), None
    return frozenset(), None


def bind_test_anchor(cert: Cert, formats: frozenset[str] | set[str] | None = None) -> Anchor:
    """``cert`` as a test anchor for ``formats`` (or the formats its name and key fit)."""
    inferred, product = infer_formats(cert)
    if formats is None:
        if not inferred:
            raise AnchorError(f"cannot tell which evidence format test anchor {cert.name!r} is for: name it, "
                              f"e.g. snp=FILE or sgx,tdx=FILE (formats: {', '.join(FORMAT_NAMES)})")
        formats = inferred
    unknown = set(formats) - set(FORMAT_NAMES)
    if unknown or not formats:
        raise AnchorError(f"unknown evidence format {', '.join(sorted(unknown)) or '(none)'} for test anchor "
                          f"{cert.name!r} (formats: {', '.join(FORMAT_NAMES)})")
    return Anchor(cert, frozenset(formats), test=True, product=product if "snp" in formats else None)


def split_spec(spec: str) -> tuple[frozenset[str] | None, str]:
    """``"sgx,tdx=root.pem"`` → ({sgx, tdx}, "root.pem"); a plain path → (None, path). A head of plain
    words before ``=`` is always read as formats, so a misspelt one is an error, not a file name."""
    head, sep, rest = spec.partition("=")
    parts = [part.strip() for part in head.split(",")]
    if not sep or not head or not all(part.isidentifier() for part in parts):
        return None, spec
    unknown = sorted(set(parts) - set(FORMAT_NAMES))
    if unknown:
        raise AnchorError(f"{spec}: unknown evidence format {', '.join(unknown)} (formats: {', '.join(FORMAT_NAMES)})")
    return frozenset(parts), rest


def load_anchor_file(spec: str | Path) -> list[Anchor]:
    """Test anchors from ``[FORMATS=]FILE`` (PEM with one or more certificates, or one DER certificate)."""
    formats, path = split_spec(str(spec))
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise AnchorError(f"{path}: cannot read: {exc.strerror or exc}") from None
    ders = [der for label, der in split_pem(data) if label == "CERTIFICATE"] if b"-----BEGIN" in data else [data]
    if not ders:
        raise AnchorError(f"{path}: no certificate found")
    out = []
    for der in ders:
        try:
            cert = Cert.from_der(der)
        except CertificateFormatError as exc:
            raise AnchorError(f"{path}: {exc}") from None
        try:
            out.append(bind_test_anchor(cert, formats))
        except AnchorError as exc:
            raise AnchorError(f"{path}: {exc}") from None
    return out


def _cn(name: str) -> str | None:
    for part in name.split(","):
        if part.startswith("CN="):
            return part[3:]
    return None


def _curve(key: Any) -> str | None:
    return key.curve.name if isinstance(key, ec.EllipticCurvePublicKey) else None
