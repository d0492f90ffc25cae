"""report_data ↔ public key binding: evidence vouches for a key when it carries the key's digest.

The digest is over the DER ``SubjectPublicKeyInfo`` (not the raw point), as Enarx keeps and the Steward
do: SHA-384 in report_data bytes ``[0, 48)`` for SEV-SNP, SHA-256 in ``[0, 32)`` for every other TEE.
The rest of report_data is not constrained here (Enarx zero-pads it).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from cryptography.hazmat.primitives import serialization

from enarx.attestation.claims import Claims
from enarx.attestation.model import Check, Tee, VerificationError


def spki_der(public_key: Any) -> bytes:
    """DER SubjectPublicKeyInfo of a ``cryptography`` public key (bytes are taken as already DER)."""
    if isinstance(public_key, (bytes, bytearray)):
        return bytes(public_key)
    if hasattr(public_key, "private_bytes"):
        public_key = public_key.public_key()  # a private key was given
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_digest(public_key: Any, tee: Tee) -> bytes:
    spki = spki_der(public_key)
    return hashlib.sha384(spki).digest() if tee is Tee.SNP else hashlib.sha256(spki).digest()


def report_data_for(public_key: Any, tee: Tee) -> bytes:
    """The 64-byte report_data a keep puts in its evidence to bind ``public_key`` (digest, zero-padded)."""
    return key_digest(public_key, tee).ljust(64, b"\x00")


def binding_check(claims: Claims, public_key: Any) -> Check:
    """A :class:`Check` saying whether ``claims.report_data`` binds ``public_key``."""
    digest = key_digest(public_key, claims.tee)
    actual = claims.report_data[: len(digest)]
    ok = hmac.compare_digest(actual, digest)
    algo = "SHA-384" if claims.tee is Tee.SNP else "SHA-256"
    return Check("binding.report-data", ok,
                 f"report_data[0:{len(digest)}] {'=' if ok else '≠'} {algo}(SubjectPublicKeyInfo)",
                 expected=digest.hex(), actual=actual.hex())


def require_binding(claims: Claims, public_key: Any) -> Check:
    """Like :func:`binding_check` but raises ``VerificationError(reason="binding")`` on a mismatch."""
    check = binding_check(claims, public_key)
    if not check.passed:
        raise VerificationError("report_data does not bind the presented public key", reason="binding",
                                checks=[check])
    return check
