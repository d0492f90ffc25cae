"""Keep-side attestation: get evidence bound to the keep's key, and trade it at a Steward for a certificate.

Flow (Enarx §6, run inside the keep before the workload): generate the keep key (P-384 for SEV-SNP,
P-256 otherwise) → report_data = hash of its DER SubjectPublicKeyInfo → evidence from the platform
(:mod:`evidence`) → a PKCS#10 CSR carrying the evidence extension (:mod:`csr`) → POST to the Steward
(:mod:`steward`) → the returned chain becomes the keep identity that TLS sockets present.
"""
