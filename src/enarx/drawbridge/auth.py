"""Who is asking: an OIDC bearer token (verified against the issuer's JWKS), a keep (a TLS client
certificate chaining to ``--ca``, carrying the Steward's verified claims), or nobody.

Tokens: RS256 or ES256 only, ``kid`` required and found in the issuer's JWKS (from its discovery
document), ``iss`` equal to the issuer, ``aud`` containing the audience, ``exp`` in the future; ``scope``
is a space-separated list of ``<level>:<context>`` where ``manage:`` covers both ``read:`` and ``write:``
(Enarx's scopes: ``drawbridge_users``, ``drawbridge_repositories``, ``drawbridge_tags``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from enarx.web.problem import HttpProblem

ALGORITHMS = ["RS256", "ES256"]
JWKS_REFRESH_SECONDS = 30.0  # at most one JWKS refetch per this interval (for a key rotated at the issuer)
LEEWAY = 30  # seconds of clock skew tolerated on exp/nbf/iat
VERIFIED_CACHE = 4096  # verified tokens remembered until they expire

log = logging.getLogger("enarx.drawbridge")


@dataclass(frozen=True)
class TokenUser:
    """A verified bearer token."""

    subject: str
    scopes: frozenset[str]

    def may(self, level: str, context: str) -> bool:
        return f"{level}:{context}" in self.scopes or f"manage:{context}" in self.scopes


@dataclass(frozen=True)
class KeepClient:
    """A TLS client certificate that chained to the configured keep CA; ``claims`` from its claims extension
    (None when it has none: such a certificate grants nothing)."""

    claims: dict[str, Any] | None
    serial: str


@dataclass
class Anonymous:
    pass


Principal = TokenUser | KeepClient | Anonymous


class OidcError(Exception):
    """The issuer's discovery document or JWKS cannot be had or is malformed."""


@dataclass
class OidcVerifier:
    """Verifies bearer tokens of one issuer for one audience; the JWKS is fetched from the discovery
    document at start-up and again (rate-limited) when a token names an unknown ``kid``."""

    issuer: str
    audience: str
    ca_bundle: str | None = None
    _keys: Any = None
    _fetched: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    discovery: dict[str, Any] = field(default_factory=dict)
    _verified: dict[bytes, tuple[TokenUser, float]] = field(default_factory=dict)

    def load(self) -> OidcVerifier:
        from enarx.cabundle import check_service_url

        try:
            check_service_url(self.issuer, "OIDC issuer")
        except Exception as exc:  # noqa: BLE001 - EnarxError: re-raised with our type
            raise OidcError(str(exc)) from None
        self.discovery = _get_json(self.issuer.rstrip("/") + "/.well-known/openid-configuration", self.ca_bundle)
        if str(self.discovery.get("issuer", "")).rstrip("/") != self.issuer.rstrip("/"):
            raise OidcError(f"the discovery document of {self.issuer} names issuer "
                            f"{self.discovery.get('issuer')!r}")
        self._refresh()
        return self

    def _refresh(self) -> None:
        from joserfc.jwk import KeySet

        uri = self.discovery.get("jwks_uri")
        if not isinstance(uri, str):
            raise OidcError(f"the discovery document of {self.issuer} has no jwks_uri")
        from enarx.cabundle import check_service_url

        try:
            check_service_url(uri, "JWKS")
        except Exception as exc:  # noqa: BLE001
            raise OidcError(str(exc)) from None
        doc = _get_json(uri, self.ca_bundle)
        try:
            keys = KeySet.import_key_set(doc)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - joserfc raises several types for bad keys
            raise OidcError(f"the JWKS at {uri} cannot be used: {exc}") from None
        self._keys = keys
        self._fetched = time.monotonic()

    def _key_ids(self) -> set[str]:
        return {k.kid for k in self._keys.keys if k.kid}

    def verify(self, token: str) -> TokenUser:
        """A verified token's subject and scopes; :class:`HttpProblem` 401 naming what is wrong otherwise.
        A token that verified is remembered (by its SHA-256) until it expires: clients send the same token
        with every request, and a signature check costs more than the rest of a small request."""
        import hashlib

        key = hashlib.sha256(token.encode()).digest()
        cached = self._verified.get(key)
        if cached is not None and cached[1] > time.time():
            return cached[0]
        user, expires = self._verify(token)
        with self._lock:
            if len(self._verified) >= VERIFIED_CACHE:
                self._verified.clear()
            self._verified[key] = (user, expires)
        return user

    def _verify(self, token: str) -> tuple[TokenUser, float]:
        from joserfc import jwt
        from joserfc.errors import ExpiredTokenError, InvalidClaimError, JoseError, MissingClaimError

        header = _header(token)
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALGORITHMS:
            raise _unauthorized("bad-token", f"token algorithm {alg!r} is not accepted (RS256 or ES256)")
        if not isinstance(kid, str) or not kid:
            raise _unauthorized("bad-token", "token has no key id (kid)")
        with self._lock:
            if kid not in self._key_ids() and time.monotonic() - self._fetched > JWKS_REFRESH_SECONDS:
                try:
                    self._refresh()
                except OidcError as exc:
                    log.warning("cannot refresh the JWKS: %s", exc)
            keys = self._keys
        if kid not in self._key_ids():
            raise _unauthorized("bad-token", f"token key id {kid!r} is not in the issuer's JWKS")
        try:
            decoded = jwt.decode(token, keys, algorithms=ALGORITHMS)
        except (JoseError, ValueError) as exc:
            raise _unauthorized("bad-token", f"token signature does not verify ({type(exc).__name__})") from None
        claims = decoded.claims
        registry = jwt.JWTClaimsRegistry(
            leeway=LEEWAY,
            iss={"essential": True, "value": self.discovery.get("issuer", self.issuer)},
            aud={"essential": True, "value": self.audience},
            exp={"essential": True},
            sub={"essential": True},
        )
        try:
            registry.validate(claims)
        except ExpiredTokenError:
            raise _unauthorized("token-expired", "token has expired: log in again") from None
        except MissingClaimError as exc:
            raise _unauthorized("bad-token", f"token lacks a required claim: {exc.description}") from None
        except InvalidClaimError as exc:
            which = exc.claim if hasattr(exc, "claim") else exc.description
            raise _unauthorized("bad-token", f"token claim is not accepted: {which}") from None
        except JoseError as exc:
            raise _unauthorized("bad-token", f"token not accepted: {exc.description}") from None
        scope = claims.get("scope", "")
        if not isinstance(scope, str) or not isinstance(claims.get("sub"), str):
            raise _unauthorized("bad-token", "token scope and sub must be strings")
        exp = claims["exp"]
        return TokenUser(claims["sub"], frozenset(scope.split())), float(exp) + LEEWAY


def _unauthorized(reason: str, detail: str) -> HttpProblem:
    return HttpProblem(401, reason, detail, headers={"WWW-Authenticate": 'Bearer realm="drawbridge"'})


def _header(token: str) -> dict[str, Any]:
    import base64

    parts = token.split(".")
    if len(parts) != 3:
        raise _unauthorized("bad-token", "bearer token is not a JWS compact token")
    try:
        text = base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4))
        header = json.loads(text)
    except (ValueError, RecursionError):
        raise _unauthorized("bad-token", "bearer token header is not base64url JSON") from None
    if not isinstance(header, dict):
        raise _unauthorized("bad-token", "bearer token header is not a JSON object")
    return header


def _get_json(url: str, ca_bundle: str | None) -> dict[str, Any]:
    from enarx.drawbridge.login import LoginError, fetch_json

    try:
        return fetch_json(url, ca_bundle)
    except LoginError as exc:
        raise OidcError(str(exc)) from None
