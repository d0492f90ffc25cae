"""Keep client certificates as a Steward issues them: the keep's key, a chain to the Steward CA, and the
claims extension (tee, measurements with host_data, TCB status, insecure…)."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from enarx.cabundle import client_context
from enarx.steward.issuer import CertificateAuthority


def claims(host_data: str, **overrides: Any) -> dict[str, Any]:
    doc = {"version": 1, "tee": "sev-snp", "measurements": {"measurement": "ab" * 48, "host_data": host_data},
           "signer": {}, "svns": {}, "tcb_status": "UpToDate", "advisory_ids": [], "debug": False,
           "policy": "test", "verified_at": dt.datetime.now(dt.UTC).isoformat(), "collateral_expiry": None,
           "test_anchor": False, "insecure": False,
           # the provenance and guest-policy facts a Steward's document carries for a relying party's policy
           "trust": {"revocation": "full", "test_anchor": False}, "platform": {"vmpl": 0, "policy": 0x30000}}
    doc.update(overrides)
    return doc


def keep_context(ca: CertificateAuthority, directory: Path, name: str, claims_doc: dict[str, Any] | None,
                 server_ca: Path, *, expired: bool = False) -> ssl.SSLContext:
    """A client TLS context presenting a keep certificate issued by ``ca`` (no claims when None)."""
    key = ec.generate_private_key(ec.SECP384R1())
    now = dt.datetime.now(dt.UTC)
    at = now - dt.timedelta(days=3) if expired else now - dt.timedelta(minutes=5)
    not_after = now - dt.timedelta(days=1) if expired else now + dt.timedelta(days=1)
    if claims_doc is None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes

        cert = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(ca.cert.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(at).not_valid_after(not_after).sign(ca.key, hashes.SHA256()))
    else:
        cert = ca.issue(key.public_key(), at=at, not_after=not_after, claims=claims_doc)
    crt_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    crt_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = client_context(str(server_ca))
    context.load_cert_chain(crt_path, key_path)
    return context
