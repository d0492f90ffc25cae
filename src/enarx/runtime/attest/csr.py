"""The CSR a keep sends to its Steward (Enarx §6.2): empty subject, the keep key, one evidence extension
(plus, when the Steward offered one, its challenge nonce, and for a keep without isolation the label its host
declares: :mod:`enarx.isolation`).

The report_data that binds the key into the evidence is :func:`enarx.attestation.binding.report_data_for`.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec


def build_csr(key: ec.EllipticCurvePrivateKey, oid: str, value: bytes, *, nonce: bytes | None = None,
              isolation: str | None = None) -> bytes:
    """DER PKCS#10 with the evidence as a non-critical extension in an extensionRequest attribute, and the
    Steward's challenge nonce (when one was bound) and the isolation label (when declared) as further
    non-critical extensions."""
    from enarx import isolation as labels
    from enarx.attestation.der import octet_string
    from enarx.attestation.freshness import OID_NONCE

    algorithm = hashes.SHA384() if isinstance(key.curve, ec.SECP384R1) else hashes.SHA256()
    builder = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value), critical=False)
    )
    if nonce is not None:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier(OID_NONCE), octet_string(nonce)), critical=False)
    if isolation is not None:
        builder = builder.add_extension(x509.UnrecognizedExtension(
            x509.ObjectIdentifier(labels.OID_ISOLATION), labels.encode(isolation)), critical=False)
    return builder.sign(key, algorithm).public_bytes(serialization.Encoding.DER)
