"""Challenge nonces: stateless to issue and check (HMAC-SHA256 with an expiry), redeemable once.

A nonce is ``base64url(expiry u64 ‖ 16 random bytes ‖ HMAC-SHA256(secret, label ‖ expiry ‖ random)[:16])``:
any process holding the secret can check it without a table. Freshness needs one piece of state — the
nonces already redeemed, kept only until they expire — so that a replayed attestation is refused.

This is the one place the broker's nonce design lives; it follows the Steward's ``/challenge`` design
(HMAC + expiry) and is meant to be replaced by that module once it is shared.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import struct
import threading
import time
from hashlib import sha256

_LABEL = b"enarx kbs nonce v1\x00"
_SIZE = 8 + 16 + 16
DEFAULT_TTL = 300.0
MAX_REDEEMED = 1 << 20


class NonceError(Exception):
    """``reason``: ``malformed``, ``forged``, ``expired`` or ``reused``."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


class Nonces:
    """Issue, check and redeem nonces. Thread-safe; ``clock`` is replaceable for tests."""

    def __init__(self, secret: bytes | None = None, ttl: float = DEFAULT_TTL, clock=time.time):
        self._secret = secret or os.urandom(32)
        self.ttl = ttl
        self._clock = clock
        self._redeemed: dict[bytes, float] = {}
        self._lock = threading.Lock()

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._secret, _LABEL + body, sha256).digest()[:16]

    def issue(self) -> str:
        body = struct.pack(">Q", int(self._clock() + self.ttl)) + os.urandom(16)
        return base64.urlsafe_b64encode(body + self._mac(body)).rstrip(b"=").decode()

    def check(self, nonce: str) -> bytes:
        """The nonce's body if it is ours and unexpired (redeemed or not)."""
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4)) if isinstance(nonce, str) else b""
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != _SIZE:
            raise NonceError("the nonce is not one this broker issued (malformed)", "malformed")
        body, mac = raw[:24], raw[24:]
        if not hmac.compare_digest(mac, self._mac(body)):
            raise NonceError("the nonce is not one this broker issued", "forged")
        (expiry,) = struct.unpack(">Q", body[:8])
        if expiry < self._clock():
            raise NonceError("the nonce has expired: start again with /kbs/v0/auth", "expired")
        return body

    def redeem(self, nonce: str) -> None:
        """Check ``nonce`` and mark it used; a second redemption raises ``reused``."""
        body = self.check(nonce)
        now = self._clock()
        with self._lock:
            if len(self._redeemed) > MAX_REDEEMED // 2:
                self._redeemed = {k: v for k, v in self._redeemed.items() if v >= now}
            if body in self._redeemed:
                raise NonceError("the nonce was already used: evidence cannot be replayed", "reused")
            if len(self._redeemed) >= MAX_REDEEMED:
                raise NonceError("too many outstanding nonces; retry shortly", "busy")
            self._redeemed[body] = struct.unpack(">Q", body[:8])[0]
