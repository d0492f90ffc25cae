"""The CSR a keep sends to its Steward (Enarx §6.2): empty subject, the keep key, one evidence extension.

The report_data that binds the key into the evidence is :func:`enarx.attestation.binding.report_data_for`.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec


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
