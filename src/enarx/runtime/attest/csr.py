"""The CSR a keep sends to its Steward (Enarx §6.2): empty subject, the keep key, one evidence extension."""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec


def report_data_for(key: ec.EllipticCurvePrivateKey) -> bytes:
    """64 bytes binding the key: SHA-384 (P-384 / SNP) or SHA-256 of the DER SubjectPublicKeyInfo, zero-padded."""
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashlib.sha384(spki) if isinstance(key.curve, ec.SECP384R1) else hashlib.sha256(spki)
    return digest.digest().ljust(64, b"\0")


def build_csr(key: ec.EllipticCurvePrivateKey, oid: str, value: bytes) -> bytes:
    """DER PKCS#10 with the evidence as a non-critical extension in an extensionRequest attribute."""
    algorithm = hashes.SHA384() if isinstance(key.curve, ec.SECP384R1) else hashes.SHA256()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value), critical=False)
        .sign(key, algorithm)
    )
    return csr.public_bytes(serialization.Encoding.DER)
