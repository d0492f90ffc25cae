"""Attestation-result tokens: EAR (draft-ietf-rats-ear) JWTs signed by the broker, and its JWKS.

The broker signs with its own P-256 key (ES256), made at start-up unless one is given, and publishes the
public key at ``/.well-known/jwks.json``. Claims: ``eat_profile``, ``iat``, ``exp``, ``iss``,
``ear.verifier-id``, ``eat_nonce`` (the challenge), ``submods.<tee>`` with ``ear.status`` and
``ear.trustworthiness-vector`` (AR4SI) and ``ear.veraison.annotated-evidence`` (the verified claims), plus
Trustee's ``tee-pubkey`` and ``jwk``, and ``enarx-package`` (the manifest digest the keep is bound to).
A keep presents the token as ``Authorization: Bearer`` to fetch resources; a stolen token is useless:
resources are wrapped to the ``tee-pubkey`` inside it.

Evidence that chained to a test trust anchor (a broker started with ``--insecure-trust-anchor``, e.g. for
the simulator) is never *affirming*: its status is ``warning``, its hardware claim the AR4SI warning tier
(32), and ``enarx.test-anchor`` is true — a relying party reading the token sees that no vendor root
vouched for the hardware.
"""

from __future__ import annotations

import time
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet

from enarx import __version__

PROFILE = "tag:github.com,2023:veraison/ear"
DEFAULT_LIFETIME = 300
# AR4SI trustworthiness claims for a keep whose evidence was verified and accepted by policy
AFFIRMING_VECTOR = {"instance-identity": 2, "configuration": 2, "executables": 2, "hardware": 2}
TEST_ANCHOR_VECTOR = {**AFFIRMING_VECTOR, "hardware": 32}  # AR4SI warning tier: no vendor root vouched
ACCEPTED_STATUSES = ("affirming", "warning")  # what this broker issues; anything else is refused
PACKAGE_CLAIM = "enarx-package"


class TokenError(Exception):
    """A bearer token that is not this broker's, has expired, or is malformed."""


class TokenIssuer:
    def __init__(self, issuer: str = "enarx-kbs", key: ECKey | None = None, lifetime: int = DEFAULT_LIFETIME,
                 clock=time.time):
        self.issuer = issuer
        self.key = key or ECKey.generate_key("P-256")
        self.kid = self.key.thumbprint()
        self.lifetime = lifetime
        self._clock = clock

    def jwks(self) -> dict[str, Any]:
        public = self.key.as_dict(private=False)
        return {"keys": [{**public, "kid": self.kid, "alg": "ES256", "use": "sig"}]}

    def issue(self, *, tee: str, claims: dict[str, Any], tee_pubkey: dict[str, Any], nonce: str,
              policy: str, package: str | None = None, test_anchor: bool = False,
              isolation: str | None = None) -> str:
        now = int(self._clock())
        lowered = test_anchor or isolation is not None  # simulated evidence, or a keep that isolates nothing
        status, vector = ("warning", TEST_ANCHOR_VECTOR) if lowered else ("affirming", AFFIRMING_VECTOR)
        payload: dict[str, Any] = {
            "eat_profile": PROFILE, "iat": now, "exp": now + self.lifetime, "iss": self.issuer,
            "ear.verifier-id": {"developer": "https://enarx.dev", "build": f"enarx-kbs {__version__}"},
            "eat_nonce": nonce,
            "submods": {tee: {"ear.status": status, "ear.trustworthiness-vector": dict(vector),
                              "ear.appraisal-policy-id": policy, "ear.veraison.annotated-evidence": claims,
                              "enarx.test-anchor": test_anchor,
                              **({"enarx.isolation": isolation} if isolation is not None else {})}},
            "tee-pubkey": tee_pubkey,
            "jwk": self.jwks()["keys"][0],
        }
        if package is not None:
            payload[PACKAGE_CLAIM] = package
        return jwt.encode({"alg": "ES256", "typ": "JWT", "kid": self.kid}, payload, self.key)

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of a token this broker issued and still valid; :class:`TokenError` otherwise."""
        if not isinstance(token, str) or len(token) > 65536:
            raise TokenError("the bearer token is malformed")
        try:
            decoded = jwt.decode(token, KeySet([self.key]), algorithms=["ES256"])
        except (JoseError, ValueError, TypeError):
            raise TokenError("the bearer token is not one this broker issued (a restarted broker has a new "
                             "key: attest again)") from None
        claims = decoded.claims
        try:
            jwt.JWTClaimsRegistry(now=int(self._clock()), leeway=0, iss={"essential": True, "value": self.issuer},
                                  exp={"essential": True}).validate(claims)
        except JoseError as exc:
            raise TokenError(f"the bearer token is not valid: {exc.description or exc.error}") from None
        submods = claims.get("submods")
        if (not isinstance(submods, dict) or len(submods) != 1 or not isinstance(next(iter(submods.values())), dict)
                or next(iter(submods.values())).get("ear.status") not in ACCEPTED_STATUSES):
            raise TokenError("the bearer token does not affirm the keep")
        return claims
