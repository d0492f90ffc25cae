"""Challenge nonces: freshness beyond Enarx, without server state.

A verifier (the Steward; the key broker reuses this) hands out a nonce; the attester binds it into its
evidence's report_data together with its key (:func:`enarx.attestation.binding.report_data_for`) and returns
it beside the evidence, so that evidence made before the nonce existed cannot be replayed. Nonces are
*stateless*: a nonce carries its own expiry and a MAC under the verifier's secret key, so any process that
holds the key — every ``--workers`` process of a Steward — accepts what any other issued, and nothing is
stored per nonce. A nonce is not single-use (replaying one within its lifetime with *the same key's*
evidence gains nothing: the evidence already binds that key); it expires.

Nonce layout (57 bytes; sent base64url)::

    version (1 byte, = 1) ‖ expiry (8 bytes, big-endian Unix seconds) ‖ random (16 bytes)
    ‖ HMAC-SHA256(key, "enarx-challenge-v1\\0" ‖ the 25 bytes before)

This module knows no HTTP: servers expose :meth:`ChallengeIssuer.issue` however they route.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from enarx.attestation.model import AttestationError

#: The CSR extension (non-critical, value a DER OCTET STRING holding the nonce) that carries the nonce to the
#: Steward beside the evidence. Our arc's ``.3`` branch (``.1`` is Enarx's evidence, ``.2`` our claims).
OID_NONCE = "1.3.6.1.4.1.58270.3.1"
VERSION = 1
NONCE_SIZE = 1 + 8 + 16 + 32
KEY_SIZE = 32
DEFAULT_TTL = timedelta(seconds=120)
_MAC_DOMAIN = b"enarx-challenge-v1\x00"
_HEAD = struct.Struct(">BQ")


class FreshnessError(AttestationError):
    """A nonce that is required and missing, malformed, not ours, or expired; ``reason`` says which."""

    def __init__(self, message: str, *, reason: str):
        super().__init__(message, reason=reason)


@dataclass(frozen=True)
class Challenge:
    """One issued nonce and when it stops being accepted."""

    nonce: bytes
    expires: datetime

    def to_json(self) -> dict[str, Any]:
        return {"nonce": encode(self.nonce), "expires": self.expires.isoformat().replace("+00:00", "Z"),
                "binding": "enarx-report-data-v1"}


def encode(nonce: bytes) -> str:
    """base64url without padding, as the nonce travels in JSON."""
    return base64.urlsafe_b64encode(nonce).rstrip(b"=").decode()


def decode(text: str) -> bytes:
    """The inverse of :func:`encode`; ``ValueError`` for anything else."""
    if not isinstance(text, str) or len(text) > 4 * NONCE_SIZE:
        raise ValueError("not a nonce")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class ChallengeIssuer:
    """Issues and checks nonces under one secret ``key`` (share it between processes that must agree)."""

    def __init__(self, key: bytes, ttl: timedelta = DEFAULT_TTL):
        if len(key) < KEY_SIZE:
            raise ValueError(f"a challenge key needs at least {KEY_SIZE} bytes")
        if ttl <= timedelta(0):
            raise ValueError("a challenge lifetime must be positive")
        self._key = bytes(key)
        self.ttl = ttl

    @classmethod
    def generate(cls, ttl: timedelta = DEFAULT_TTL) -> ChallengeIssuer:
        """A fresh random key (made before a server forks its workers, so that they share it)."""
        return cls(secrets.token_bytes(KEY_SIZE), ttl)

    def _mac(self, head: bytes) -> bytes:
        return hmac.new(self._key, _MAC_DOMAIN + head, hashlib.sha256).digest()

    def issue(self, now: datetime | None = None) -> Challenge:
        expires = (now or datetime.now(UTC)) + self.ttl
        head = _HEAD.pack(VERSION, int(expires.timestamp())) + secrets.token_bytes(16)
        return Challenge(head + self._mac(head), datetime.fromtimestamp(int(expires.timestamp()), UTC))

    def check(self, nonce: bytes, now: datetime | None = None) -> datetime:
        """The nonce's expiry if it is ours and unexpired; :class:`FreshnessError` otherwise."""
        if len(nonce) != NONCE_SIZE or nonce[0] != VERSION:
            raise FreshnessError(f"the challenge nonce is not one this server issues ({len(nonce)} bytes)",
                                 reason="challenge-invalid")
        head, mac = nonce[:-32], nonce[-32:]
        if not hmac.compare_digest(mac, self._mac(head)):
            raise FreshnessError("the challenge nonce was not issued by this server (its MAC does not verify)",
                                 reason="challenge-invalid")
        expires = datetime.fromtimestamp(_HEAD.unpack_from(head)[1], UTC)
        current = now or datetime.now(UTC)
        if current >= expires:
            raise FreshnessError(f"the challenge nonce expired at {expires.isoformat()}: fetch a new one",
                                 reason="challenge-expired")
        return expires


def require_fresh(issuer: ChallengeIssuer, nonce: bytes | None, required: bool,
                  now: datetime | None = None) -> datetime | None:
    """The freshness rule for one piece of evidence: a nonce given must be valid and unexpired; none given is
    accepted only when ``required`` is false (plain Enarx keeps). Returns the nonce's expiry, if any."""
    if nonce is None:
        if required:
            raise FreshnessError("a fresh challenge is required: the request carries no nonce from "
                                 "GET /challenge bound into its evidence", reason="challenge-required")
        return None
    return issuer.check(nonce, now)
