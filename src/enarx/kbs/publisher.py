"""Who may register keys: publishers authenticated by an OIDC bearer token.

One small interface (:class:`PublisherAuth`), so the broker can switch to the registry's shared OIDC
verifier in one place. :class:`OidcPublisherAuth` reads the issuer's discovery document and JWKS
(https; http only on loopback), and accepts RS256/ES256 tokens whose ``iss``, ``aud`` and ``exp`` are
right; the publisher is ``iss`` + ``sub``. With no issuer configured, registration is refused.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from typing import Protocol

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from enarx import cabundle
from enarx.errors import EnarxError

ALGORITHMS = ["RS256", "ES256"]
MAX_DOCUMENT = 1 << 20
REFRESH_AFTER = 60.0


class AuthError(Exception):
    def __init__(self, status: int, reason: str, message: str):
        super().__init__(message)
        self.status = status
        self.reason = reason


class PublisherAuth(Protocol):
    def authenticate(self, authorization: str | None) -> str:
        """The publisher's identity for an ``Authorization`` header; :class:`AuthError` otherwise."""


class NoPublishers:
    """Registration switched off (no ``--oidc-issuer``)."""

    def authenticate(self, authorization: str | None) -> str:
        raise AuthError(403, "registration-disabled",
                        "this broker accepts no key registrations (start it with --oidc-issuer/--oidc-audience)")


class OidcPublisherAuth:
    def __init__(self, issuer: str, audience: str, ca_bundle: str | None = None, clock=time.time):
        cabundle.check_service_url(issuer, "OIDC issuer")
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self._context = cabundle.client_context(ca_bundle) if issuer.startswith("https") else None
        self._clock = clock
        self._keys: KeySet | None = None
        self._fetched = 0.0
        self._lock = threading.Lock()

    def _get(self, url: str) -> dict:
        cabundle.check_service_url(url, "OIDC issuer")
        try:
            with urllib.request.urlopen(url, timeout=10, context=self._context) as response:
                data = response.read(MAX_DOCUMENT + 1)
        except OSError as exc:
            raise AuthError(503, "issuer-unreachable", f"cannot reach the OIDC issuer: {exc}") from None
        if len(data) > MAX_DOCUMENT:
            raise AuthError(503, "issuer-unreachable", "the OIDC issuer's document is too large")
        try:
            doc = json.loads(data)
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            raise AuthError(503, "issuer-unreachable", f"{url} did not answer a JSON object")
        return doc

    def _keyset(self, refresh: bool) -> KeySet:
        with self._lock:
            stale = self._clock() - self._fetched > REFRESH_AFTER
            if self._keys is None or (refresh and stale):
                discovery = self._get(self.issuer + "/.well-known/openid-configuration")
                if discovery.get("issuer", "").rstrip("/") != self.issuer or not isinstance(
                        discovery.get("jwks_uri"), str):
                    raise AuthError(503, "issuer-unreachable", "the OIDC discovery document names another issuer "
                                    "or no jwks_uri")
                try:
                    self._keys = KeySet.import_key_set(self._get(discovery["jwks_uri"]))
                except (JoseError, ValueError, TypeError, KeyError):
                    raise AuthError(503, "issuer-unreachable", "the OIDC issuer's JWKS does not parse") from None
                self._fetched = self._clock()
            return self._keys

    def authenticate(self, authorization: str | None) -> str:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise AuthError(401, "unauthenticated", "registering a key needs Authorization: Bearer <OIDC token>")
        token = authorization[7:].strip()
        decoded = None
        for refresh in (False, True):  # an unknown kid may mean the issuer rotated its keys
            try:
                decoded = jwt.decode(token, self._keyset(refresh), algorithms=ALGORITHMS)
                break
            except (JoseError, ValueError, TypeError):
                continue
        if decoded is None:
            raise AuthError(401, "bad-token", "the bearer token is not signed by the configured OIDC issuer")
        try:
            jwt.JWTClaimsRegistry(now=int(self._clock()), leeway=30,
                                  iss={"essential": True, "value": self.issuer},
                                  aud={"essential": True, "value": self.audience},
                                  exp={"essential": True}, sub={"essential": True}).validate(decoded.claims)
        except JoseError as exc:
            raise AuthError(401, "bad-token", f"the bearer token is not valid here: {exc.description or exc.error}"
                            ) from None
        return f"{self.issuer}#{decoded.claims['sub']}"


def make(issuer: str | None, audience: str | None, ca_bundle: str | None = None) -> PublisherAuth:
    if not issuer:
        return NoPublishers()
    if not audience:
        raise EnarxError("--oidc-issuer needs --oidc-audience")
    return OidcPublisherAuth(issuer, audience, ca_bundle)
