"""The broker's decisions: challenge, attest, release, register. Each refusal is a typed :class:`KbsRefusal`.

A key is released only when (1) the evidence is genuine and current and passes the **broker's** policy,
(2) its report_data binds the challenge nonce and the keep's ephemeral key, the nonce having been
issued by this broker, to this session, and never redeemed before, and (3) the verified claims pass the
**package's** policy registered with the key. Refusals name every failed rule.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from enarx.attestation.anchors import TrustAnchors
from enarx.attestation.claims import Claims
from enarx.attestation.model import Check, CollateralSet
from enarx.attestation.policy import Policy
from enarx.kbs import ear, evidence, teekey
from enarx.kbs.nonce import NonceError, Nonces
from enarx.kbs.publisher import AuthError, NoPublishers, PublisherAuth
from enarx.kbs.store import Resource, ResourceStore, StoreConflict
from enarx.packaging import keys, manifest, trust
from enarx.packaging.errors import PackageError

SESSION_TTL = 300.0
MAX_SESSIONS = 10_000


@dataclass
class KbsRefusal(Exception):
    status: int
    reason: str
    detail: str
    checks: list[Check] = field(default_factory=list)
    tee: str | None = None

    def __str__(self) -> str:
        return f"{self.status} {self.reason}: {self.detail}"


@dataclass
class Session:
    id: str
    tee: str
    nonce: str
    expires: float
    claims: Claims | None = None
    tee_key: Any = None
    tee_alg: str = ""


@dataclass
class BrokerConfig:
    policy: Policy = field(default_factory=trust.default_policy)
    policy_name: str = "default"
    anchors: TrustAnchors | None = None
    collateral: CollateralSet = field(default_factory=CollateralSet)
    store: ResourceStore = field(default_factory=ResourceStore)
    publishers: PublisherAuth = field(default_factory=NoPublishers)
    issuer: str = "enarx-kbs"
    verify_at: datetime | None = None


class Broker:
    """Thread-safe; one instance serves every request of one process."""

    def __init__(self, config: BrokerConfig, *, clock=time.time):
        from enarx.attestation import roots

        self.config = config
        anchors = config.anchors if config.anchors is not None else roots.builtin_anchors()
        self.verifier = trust.make_verifier(anchors, config.policy)
        self.nonces = Nonces(clock=clock)
        self.tokens = ear.TokenIssuer(config.issuer, clock=clock)
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    # -- sessions ---------------------------------------------------------------------------------------
    def _new_session(self, tee: str) -> Session:
        now = self._clock()
        session = Session(base64.urlsafe_b64encode(os.urandom(24)).decode().rstrip("="), tee, self.nonces.issue(),
                          now + SESSION_TTL)
        with self._lock:
            if len(self._sessions) >= MAX_SESSIONS:
                self._sessions = {k: s for k, s in self._sessions.items() if s.expires > now}
            if len(self._sessions) >= MAX_SESSIONS:
                raise KbsRefusal(503, "busy", "too many attestation sessions in progress; retry shortly")
            self._sessions[session.id] = session
        return session

    def session(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        with self._lock:
            session = self._sessions.get(session_id)
            if session is not None and session.expires <= self._clock():
                del self._sessions[session_id]
                return None
            return session

    # -- RCAR -------------------------------------------------------------------------------------------
    def auth(self, body: Any) -> tuple[Session, dict[str, Any]]:
        """``Request`` → a new session and its ``Challenge``."""
        if not isinstance(body, dict):
            raise KbsRefusal(400, "malformed", "the auth request must be a JSON object {version, tee, extra-params}")
        try:
            evidence.check_version(body.get("version"))
            evidence.tee_of(body.get("tee"))
        except evidence.EvidenceError as exc:
            raise KbsRefusal(401, "unsupported", str(exc)) from None
        session = self._new_session(body["tee"])
        return session, {"nonce": session.nonce, "extra-params": ""}

    def attest(self, session_id: str | None, body: Any) -> tuple[Session, str]:
        """``Attestation`` → an EAR token (and the session is now attested)."""
        session = self.session(session_id)
        if session is None:
            raise KbsRefusal(401, "no-session", "no attestation session: POST /kbs/v0/auth first and send its "
                             "kbs-session-id cookie")
        if not isinstance(body, dict) or not isinstance(body.get("runtime-data"), dict):
            raise KbsRefusal(400, "malformed", "the attestation must be a JSON object with runtime-data and "
                             "tee-evidence")
        runtime_data = body["runtime-data"]
        nonce = runtime_data.get("nonce")
        if not isinstance(nonce, str) or not hmac.compare_digest(nonce.encode(), session.nonce.encode()):
            raise KbsRefusal(401, "nonce-mismatch", "runtime-data.nonce is not this session's challenge")
        try:
            self.nonces.redeem(nonce)
        except NonceError as exc:
            raise KbsRefusal(401, f"nonce-{exc.reason}", str(exc)) from None
        try:
            tee_key, alg = teekey.parse_public(runtime_data.get("tee-pubkey"))
            tee = evidence.tee_of(session.tee)
            parsed = evidence.parse_tee_evidence(tee, body.get("tee-evidence"))
        except (teekey.TeeKeyError, evidence.EvidenceError) as exc:
            raise KbsRefusal(400, "malformed", str(exc), tee=session.tee) from None
        at = self.config.verify_at or datetime.now(UTC)
        verdict = trust.verify(self.verifier, parsed.evidence, parsed.collateral.merge(self.config.collateral),
                               fmt=evidence.FORMATS[tee], at=at)
        if verdict.status != "trusted" or verdict.claims is None:
            failed = [c for c in verdict.checks if not c.passed]
            what = "not genuine or not current" if verdict.status == "failed" else "refused by the broker's policy"
            raise KbsRefusal(403, verdict.reason, f"{session.tee} evidence {what}: "
                             f"{trust.describe_failures(failed) or verdict.reason}", failed, tee=session.tee)
        claims = verdict.claims
        checks = [self._binding(claims, runtime_data)]
        if "init-data" in body and body["init-data"] is not None:
            checks.append(self._init_data(claims, body["init-data"]))
        failed = [c for c in checks if not c.passed]
        if failed:
            raise KbsRefusal(403, "binding", f"{session.tee} evidence does not bind this request: "
                             f"{trust.describe_failures(failed)}", failed, tee=session.tee)
        session.claims, session.tee_key, session.tee_alg = claims, tee_key, alg
        token = self.tokens.issue(tee=session.tee, claims=trust.claims_to_json(claims),
                                  tee_pubkey=runtime_data["tee-pubkey"], nonce=nonce, policy=self.config.policy_name)
        return session, token

    @staticmethod
    def _binding(claims: Claims, runtime_data: dict[str, Any]) -> Check:
        expected = evidence.report_data_for(runtime_data)
        ok = hmac.compare_digest(claims.report_data.ljust(64, b"\x00")[:64], expected)
        return Check("kbs.runtime-data-binding", ok, "report_data = SHA-384(runtime-data) ‖ zeros",
                     expected=expected.hex(), actual=claims.report_data.hex())

    @staticmethod
    def _init_data(claims: Claims, init_data: Any) -> Check:
        import hashlib

        if not isinstance(init_data, dict) or not isinstance(init_data.get("body"), str):
            return Check("kbs.init-data", False, "init-data must be {format, body}")
        body = init_data["body"].encode()
        measured = claims.measurements.get("host_data") or claims.measurements.get("mrconfigid") or ""
        digest = (hashlib.sha256(body) if len(measured) <= 64 else hashlib.sha384(body)).hexdigest()
        ok = bool(measured) and hmac.compare_digest(measured[:len(digest)], digest)
        return Check("kbs.init-data", ok, "HOST_DATA / MRCONFIGID = digest of init-data", expected=digest,
                     actual=measured or "absent")

    def resource(self, path: str, session_id: str | None, authorization: str | None) -> tuple[dict[str, str], Resource]:
        """The resource at ``path`` as a JWE to the attested keep's key; :class:`KbsRefusal` otherwise."""
        claims, tee_key, alg, tee = self._attested(session_id, authorization)
        found = self.config.store.get(path)
        if found is None:
            raise KbsRefusal(404, "not-found", f"no resource {path!r} is registered here", tee=tee)
        checks = trust.appraise(trust.parse_policy(found.policy, f"package policy of {path}"), claims,
                                self.config.verify_at)
        failed = [c for c in checks if not c.passed]
        if failed:
            raise KbsRefusal(403, "package-policy", f"the keep does not satisfy the package policy of {path}: "
                             f"{trust.describe_failures(failed)}", failed, tee=tee)
        return teekey.wrap(found.key, tee_key, alg), found

    def _attested(self, session_id: str | None, authorization: str | None):
        if authorization and authorization.lower().startswith("bearer "):
            try:
                token = self.tokens.verify(authorization[7:].strip())
                tee, sub = next(iter(token["submods"].items()))
                claims = trust.claims_from_json(sub["ear.veraison.annotated-evidence"])
                tee_key, alg = teekey.parse_public(token.get("tee-pubkey"))
            except (ear.TokenError, teekey.TeeKeyError, KeyError, ValueError, TypeError) as exc:
                raise KbsRefusal(401, "bad-token", str(exc)) from None
            return claims, tee_key, alg, tee
        session = self.session(session_id)
        if session is None or session.claims is None:
            raise KbsRefusal(401, "unauthenticated", "attest first (POST /kbs/v0/auth, /kbs/v0/attest) and send "
                             "the session cookie or the attestation token as Authorization: Bearer")
        return session.claims, session.tee_key, session.tee_alg, session.tee

    # -- publishers -------------------------------------------------------------------------------------
    def register(self, path: str, authorization: str | None, body: Any) -> Resource:
        """Record a package's content key and keep policy at ``path`` for an authenticated publisher."""
        try:
            owner = self.config.publishers.authenticate(authorization)
        except AuthError as exc:
            raise KbsRefusal(exc.status, exc.reason, str(exc)) from None
        if not isinstance(body, dict) or not isinstance(body.get("manifest"), str) or not isinstance(
                body.get("key"), str):
            raise KbsRefusal(400, "malformed", "a registration is {\"manifest\": <manifest.jws>, \"key\": <base64url>}")
        try:
            doc = manifest.parse_unverified(body["manifest"])
            if doc.resource != path:
                raise KbsRefusal(400, "resource-mismatch", f"the manifest names resource {doc.resource!r}, not {path!r}")
            key = _b64url(body["key"])
            keys.check_key(key, doc.package_id_bytes, doc.key_id)
            trust.parse_policy(doc.policy, "the manifest's policy")
        except PackageError as exc:
            raise KbsRefusal(400, exc.reason, str(exc)) from None
        resource = Resource(path, key, doc.policy, owner, doc.package_id, doc.digest)
        try:
            self.config.store.put(resource)
        except StoreConflict as exc:
            raise KbsRefusal(409 if exc.reason == "exists" else 403, exc.reason, str(exc)) from None
        return resource


def _b64url(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise PackageError("the key is not base64url", "format") from None
