"""Simulated AWS Nitro Enclaves attestation documents: COSE_Sign1 (ES384) under a test root.

The test root is named like AWS's (``aws.nitro-enclaves``, P-384), so ``--trust-anchor`` binds it to the
``nitro`` format by itself; the real AWS root never verifies it. ``root_key``/``root_name`` let a test sign
the document under any other hierarchy (e.g. an AMD-named one, which a verifier must refuse for Nitro).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from enarx.attestation.simulate.pki import Name, algorithm_for, issue_certificate

ROOT_NAME: Name = [("C", "US"), ("O", "Amazon"), ("OU", "AWS"), ("CN", "aws.nitro-enclaves")]


@dataclass
class SimulatedNitro:
    document: bytes
    root: bytes  # DER of the root certificate (the anchor to configure)
    at: datetime


def simulate_nitro(*, pcrs: dict[int, bytes] | None = None, user_data: bytes = b"", at: datetime | None = None,
                   root_key: Any = None, root_name: Name | None = None, root_der: bytes | None = None) -> SimulatedNitro:
    """One signed attestation document; PCR0–2 all zero makes it a debug enclave."""
    at = (at or datetime.now(UTC)).replace(microsecond=0)
    name = root_name or ROOT_NAME
    key = root_key or ec.generate_private_key(ec.SECP384R1())
    algorithm = algorithm_for(key)
    if root_der is None:
        root_der = issue_certificate(subject=name, issuer=name, public_key=key.public_key(), signing_key=key,
                                     algorithm=algorithm, serial=1, not_before=at - timedelta(days=1),
                                     not_after=at + timedelta(days=365),
                                     extensions=_ca())
    leaf_key = ec.generate_private_key(ec.SECP384R1())
    leaf = issue_certificate(subject=[("CN", "i-0123456789abcdef0-enc.nitro")], issuer=name,
                             public_key=leaf_key.public_key(), signing_key=key, algorithm=algorithm, serial=2,
                             not_before=at - timedelta(minutes=5), not_after=at + timedelta(hours=3))
    protected = cbor2.dumps({1: -35})
    payload = cbor2.dumps({
        "module_id": "i-0123456789abcdef0-enc", "digest": "SHA384", "timestamp": int(at.timestamp() * 1000),
        "pcrs": pcrs if pcrs is not None else {i: bytes([i + 1]) * 48 for i in range(3)}, "certificate": leaf,
        "cabundle": [root_der], "user_data": user_data,
    })
    r, s = decode_dss_signature(leaf_key.sign(cbor2.dumps(["Signature1", protected, b"", payload]),
                                              ec.ECDSA(hashes.SHA384())))
    document = cbor2.dumps([protected, {}, payload, r.to_bytes(48, "big") + s.to_bytes(48, "big")])
    return SimulatedNitro(document, root_der, at)


def _ca() -> list[bytes]:
    from enarx.attestation.simulate.pki import basic_constraints, key_usage

    return [basic_constraints(True), key_usage(True)]


__all__ = ["ROOT_NAME", "SimulatedNitro", "simulate_nitro"]
