"""Every signature verification of the attestation core goes through :func:`verify`: one seam.

Why one seam: a verifier is only as fast as the signatures it must check, and the benchmark's floor is
"the signature operations this verification actually performed", so :func:`recording` captures each
call (key, scheme, data, signature) for replay with ``cryptography`` alone, in the same run.

Schemes are named by what the signer declares (a certificate's AlgorithmIdentifier) or what a format
fixes (SEV-SNP reports: ECDSA P-384/SHA-384; Intel quotes: ECDSA P-256/SHA-256 with raw r‖s).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

_HASHES = {"sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}
_ECDSA = {name: ec.ECDSA(h()) for name, h in _HASHES.items()}  # immutable algorithm objects


@dataclass(frozen=True)
class Scheme:
    """A signature scheme: ``kind`` is ``pss``, ``pkcs1`` or ``ecdsa``; ``unknown`` never verifies."""

    kind: str
    hash_name: str
    salt_length: int | None = None


ECDSA_SHA256 = Scheme("ecdsa", "sha256")
ECDSA_SHA384 = Scheme("ecdsa", "sha384")


@dataclass(frozen=True)
class Operation:
    """One recorded verification, enough to replay it."""

    public_key: Any
    scheme: Scheme
    data: bytes
    signature: bytes  # DER for ECDSA, raw for RSA


_recorder = threading.local()


@contextlib.contextmanager
def recording() -> Iterator[list[Operation]]:
    """Collect every :func:`verify` call made by this thread inside the block."""
    ops: list[Operation] = []
    previous = getattr(_recorder, "ops", None)
    _recorder.ops = ops
    try:
        yield ops
    finally:
        _recorder.ops = previous


def verify(public_key: Any, scheme: Scheme, data: bytes, signature: bytes) -> bool:
    """Whether ``signature`` over ``data`` verifies with ``public_key`` (never raises for a bad signature)."""
    ops = getattr(_recorder, "ops", None)
    if ops is not None:
        ops.append(Operation(public_key, scheme, data, signature))
    return replay(public_key, scheme, data, signature)


def replay(public_key: Any, scheme: Scheme, data: bytes, signature: bytes) -> bool:
    """The bare ``cryptography`` call behind :func:`verify` (the benchmark's floor calls this). A key of the
    wrong kind for the scheme fails like a bad signature (``cryptography`` raises TypeError for it)."""
    try:
        if scheme.kind == "ecdsa":
            public_key.verify(signature, data, _ECDSA[scheme.hash_name])
            return True
        h = _HASHES[scheme.hash_name]()
        if scheme.kind == "pss":
            public_key.verify(signature, data, padding.PSS(mgf=padding.MGF1(h), salt_length=scheme.salt_length), h)
            return True
        if scheme.kind == "pkcs1":
            public_key.verify(signature, data, padding.PKCS1v15(), h)
            return True
    except (InvalidSignature, ValueError, UnsupportedAlgorithm, TypeError, KeyError, AttributeError):
        return False
    return False


def verify_raw_ecdsa(public_key: Any, scheme: Scheme, data: bytes, raw: bytes) -> bool:
    """ECDSA with a fixed-size big-endian r‖s signature (Intel quotes and collateral, COSE, SPDM)."""
    if not raw or len(raw) % 2:
        return False
    half = len(raw) // 2
    der = encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))
    return verify(public_key, scheme, data, der)
