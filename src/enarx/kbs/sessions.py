"""The broker's attestation sessions: nothing stored until a genuine TEE has attested.

``POST /kbs/v0/auth`` stores nothing. Its nonce is the Steward's stateless challenge
(:mod:`enarx.attestation.freshness`: expiry + HMAC under the broker's secret), with the TEE the client
named covered by the MAC, and the session cookie is ``<tee>.<nonce>`` — so ``/attest`` checks the
cookie without a table, and anonymous clients cannot fill the broker's memory.

State is created only after the evidence verified and bound the nonce (:meth:`Sessions.attested`):
the nonce is *redeemed* (single use until it expires: a replayed attestation is refused) and the
attested session — claims, the keep's key, the package it is bound to — is kept until the nonce
expires, for ``GET /kbs/v0/resource`` with the cookie. Both tables therefore grow only with genuine
attestations; both are bounded anyway.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from enarx.attestation import freshness
from enarx.attestation.claims import Claims

SESSION_TTL = timedelta(minutes=5)
MAX_ATTESTED = 100_000
_CONTEXT = b"enarx-kbs-session\x00"


class SessionError(Exception):
    """``reason``: ``no-session``, ``nonce-invalid``, ``nonce-expired``, ``nonce-reused`` or ``busy``."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Challenge:
    """An issued (or presented) challenge: the TEE it is for, the nonce, when it expires."""

    tee: str
    nonce: str  # base64url, as it travels in the challenge and in runtime-data
    expires: float

    @property
    def cookie(self) -> str:
        return f"{self.tee}.{self.nonce}"


@dataclass
class AttestedSession:
    tee: str
    claims: Claims
    tee_key: Any
    tee_alg: str
    package: str | None  # the manifest digest the keep is bound to (runtime-data or HOST_DATA), if any
    expires: float
    isolation: str | None = None  # the keep's own word that it is not isolated (runtime-data enarx-isolation)


class Sessions:
    """Thread-safe; ``clock`` (Unix seconds) is replaceable for tests."""

    def __init__(self, issuer: freshness.ChallengeIssuer | None = None, clock=time.time):
        self._issuer = issuer or freshness.ChallengeIssuer.generate(SESSION_TTL)
        self._clock = clock
        self._redeemed: dict[str, float] = {}
        self._attested: dict[str, AttestedSession] = {}
        self._lock = threading.Lock()

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def challenge(self, tee: str) -> Challenge:
        """A new challenge for ``tee``; nothing is stored."""
        issued = self._issuer.issue(self._now(), context=_CONTEXT + tee.encode())
        return Challenge(tee, freshness.encode(issued.nonce), issued.expires.timestamp())

    def open(self, cookie: str | None) -> Challenge:
        """The challenge a session cookie carries, if this broker issued it and it has not expired."""
        if not cookie:
            raise SessionError("no attestation session: POST /kbs/v0/auth first and send its kbs-session-id "
                               "cookie", "no-session")
        tee, _, nonce = cookie.partition(".")
        try:
            raw = freshness.decode(nonce)
        except ValueError:
            raw = b""
        if freshness.encode(raw) != nonce:  # one spelling per nonce: redemption is keyed by the text
            raise SessionError("the session cookie is not one this broker issued", "nonce-invalid")
        try:
            expires = self._issuer.check(raw, self._now(), context=_CONTEXT + tee.encode())
        except freshness.FreshnessError as exc:
            if exc.reason == "challenge-expired":
                raise SessionError("the attestation session expired: start again with /kbs/v0/auth",
                                   "nonce-expired") from None
            raise SessionError("the session cookie is not one this broker issued", "nonce-invalid") from None
        return Challenge(tee, nonce, expires.timestamp())

    def attested(self, challenge: Challenge, session: AttestedSession) -> None:
        """Redeem ``challenge`` (once only) and remember ``session`` under its cookie. Call only after the
        evidence verified and bound the challenge's nonce."""
        now = self._clock()
        with self._lock:
            if len(self._redeemed) >= MAX_ATTESTED:
                self._expire(now)
            if challenge.nonce in self._redeemed:
                raise SessionError("the nonce was already used: evidence cannot be replayed", "nonce-reused")
            if len(self._redeemed) >= MAX_ATTESTED:
                raise SessionError("too many attestations in progress; retry shortly", "busy")
            self._redeemed[challenge.nonce] = challenge.expires
            self._attested[challenge.cookie] = session

    def session(self, cookie: str | None) -> AttestedSession | None:
        """The attested session of ``cookie``, while it lasts."""
        if not cookie:
            return None
        with self._lock:
            session = self._attested.get(cookie)
            if session is not None and session.expires <= self._clock():
                del self._attested[cookie]
                return None
            return session

    def _expire(self, now: float) -> None:
        self._redeemed = {k: v for k, v in self._redeemed.items() if v > now}
        self._attested = {k: s for k, s in self._attested.items() if s.expires > now}
