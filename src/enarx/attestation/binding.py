"""report_data ↔ public key (and nonce) binding: evidence vouches for a key when it carries the key's digest.

Two layouts, told apart by whether the request carries a challenge nonce (:mod:`enarx.attestation.freshness`):

* **Enarx** (no nonce): ``H(SPKI)`` — the digest of the DER ``SubjectPublicKeyInfo`` (not the raw point), as
  Enarx keeps and Stewards do.
* **Challenge** (nonce): ``H("enarx-report-data-v1\0" ‖ u32(len SPKI) ‖ SPKI ‖ u32(len nonce) ‖ nonce)``.
  The domain prefix cannot begin a DER SPKI (``0x30``), so no value is valid under both layouts, and the
  length prefixes make the split between key and nonce unambiguous.

``H`` is SHA-384 for SEV-SNP (report_data bytes ``[0, 48)``) and SHA-256 for every other TEE (``[0, 32)``);
the rest of report_data is zero-padded by our keeps and not constrained here.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
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


CHALLENGE_DOMAIN = b"enarx-report-data-v1\x00"
_LEN = struct.Struct(">I")


def bound_message(public_key: Any, nonce: bytes | None = None) -> bytes:
    """What report_data's digest is taken over: the SPKI alone (Enarx), or the challenge layout with a nonce."""
    spki = spki_der(public_key)
    if nonce is None:
        return spki
    return CHALLENGE_DOMAIN + _LEN.pack(len(spki)) + spki + _LEN.pack(len(nonce)) + nonce


def key_digest(public_key: Any, tee: Tee, nonce: bytes | None = None) -> bytes:
    message = bound_message(public_key, nonce)
    return hashlib.sha384(message).digest() if tee is Tee.SNP else hashlib.sha256(message).digest()


def report_data_for(public_key: Any, tee: Tee, nonce: bytes | None = None) -> bytes:
    """The 64-byte report_data a keep puts in its evidence to bind ``public_key`` (and ``nonce``, if any)."""
    return key_digest(public_key, tee, nonce).ljust(64, b"\x00")


def binding_check(claims: Claims, public_key: Any, nonce: bytes | None = None) -> Check:
    """A :class:`Check` saying whether ``claims.report_data`` binds ``public_key`` (and ``nonce``)."""
    digest = key_digest(public_key, claims.tee, nonce)
    actual = claims.report_data[: len(digest)]
    ok = hmac.compare_digest(actual, digest)
    algo = "SHA-384" if claims.tee is Tee.SNP else "SHA-256"
    what = "SubjectPublicKeyInfo" if nonce is None else "enarx-report-data-v1 ‖ SubjectPublicKeyInfo ‖ nonce"
    return Check("binding.report-data", ok, f"report_data[0:{len(digest)}] {'=' if ok else '≠'} {algo}({what})",
                 expected=digest.hex(), actual=actual.hex())


def require_binding(claims: Claims, public_key: Any, nonce: bytes | None = None) -> Check:
    """Like :func:`binding_check` but raises ``VerificationError(reason="binding")`` on a mismatch."""
    check = binding_check(claims, public_key, nonce)
    if not check.passed:
        raise VerificationError("report_data does not bind the presented public key", reason="binding",
                                checks=[check])
    return check
