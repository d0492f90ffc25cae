"""The broker's decisions: challenge, attest, release, register. Each refusal is a typed :class:`KbsRefusal`.

A key is released only when (1) the evidence is genuine and current and passes the **broker's** policy,
(2) its report_data binds the challenge nonce and the keep's ephemeral key, the nonce having been
issued by this broker, for this session's TEE, and never redeemed before, (3) the keep is bound to the
**package** the key was registered for — the manifest digest in its runtime-data (``enarx-package``, put
there by the keep after verifying the manifest) or in HOST_DATA / MRCONFIGID — and (4) the verified
claims pass the package's keep policy. Refusals name every failed rule. Nothing is stored for a client
until its evidence has verified (:mod:`enarx.kbs.sessions`).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from enarx.attestation.anchors import TrustAnchors
from enarx.attestation.claims import Claims
from enarx.attestation.model import Check, CollateralSet
from enarx.attestation.policy import Policy
from enarx.kbs import ear, evidence, teekey
from enarx.kbs.publisher import AuthError, NoPublishers, PublisherAuth
from enarx.kbs.sessions import AttestedSession, Challenge, SessionError, Sessions
from enarx.kbs.store import Resource, ResourceStore, StoreConflict
from enarx.packaging import keys, manifest, trust
from enarx.packaging.errors import PackageError

_DIGEST = re.compile(r"[0-9a-f]{64}")


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
        self.verifier = trust.make_verifier(anchors, config.policy, config.collateral)
        self.sessions = Sessions(clock=clock)
        self.tokens = ear.TokenIssuer(config.issuer, clock=clock)
        self._clock = clock

    # -- RCAR -------------------------------------------------------------------------------------------
    def auth(self, body: Any) -> Challenge:
        """``Request`` → a ``Challenge`` (its cookie is the session; nothing is stored)."""
        if not isinstance(body, dict):
            raise KbsRefusal(400, "malformed", "the auth request must be a JSON object {version, tee, extra-params}")
        try:
            evidence.check_version(body.get("version"))
            evidence.tee_of(body.get("tee"))
        except evidence.EvidenceError as exc:
            raise KbsRefusal(401, "unsupported", str(exc)) from None
        return self.sessions.challenge(body["tee"])

    def attest(self, cookie: str | None, body: Any) -> tuple[AttestedSession, str]:
        """``Attestation`` → an EAR token (and the session is now attested)."""
        try:
            challenge = self.sessions.open(cookie)
        except SessionError as exc:
            raise KbsRefusal(401, exc.reason, str(exc)) from None
        if not isinstance(body, dict) or not isinstance(body.get("runtime-data"), dict):
            raise KbsRefusal(400, "malformed", "the attestation must be a JSON object with runtime-data and "
                             "tee-evidence")
        runtime_data = body["runtime-data"]
        nonce = runtime_data.get("nonce")
        if not isinstance(nonce, str) or not hmac.compare_digest(nonce.encode(), challenge.nonce.encode()):
            raise KbsRefusal(401, "nonce-mismatch", "runtime-data.nonce is not this session's challenge")
        try:
            tee_key, alg = teekey.parse_public(runtime_data.get("tee-pubkey"))
            tee = evidence.tee_of(challenge.tee)
            parsed = evidence.parse_tee_evidence(tee, body.get("tee-evidence"))
            package = _package_member(runtime_data)
            isolation = _isolation_member(runtime_data)
            expected = evidence.report_data_for(parsed.bound_object(runtime_data))
        except (teekey.TeeKeyError, evidence.EvidenceError) as exc:
            raise KbsRefusal(400, "malformed", str(exc), tee=challenge.tee) from None
        at = self.config.verify_at or datetime.now(UTC)
        verdict = trust.verify(self.verifier, parsed.evidence, parsed.collateral,
                               fmt=evidence.FORMATS[tee], at=at)
        if verdict.status != "trusted" or verdict.claims is None:
            failed = [c for c in verdict.checks if not c.passed]
            what = "not genuine or not current" if verdict.status == "failed" else "refused by the broker's policy"
            raise KbsRefusal(403, verdict.reason, f"{challenge.tee} evidence {what}: "
                             f"{trust.describe_failures(failed) or verdict.reason}", failed, tee=challenge.tee)
        claims = verdict.claims
        checks = [self._binding(claims, expected)]
        if "init-data" in body and body["init-data"] is not None:
            checks.append(self._init_data(claims, body["init-data"]))
        failed = [c for c in checks if not c.passed]
        if failed:
            raise KbsRefusal(403, "binding", f"{challenge.tee} evidence does not bind this request: "
                             f"{trust.describe_failures(failed)}", failed, tee=challenge.tee)
        package = package or trust.host_bound_digest(claims)
        session = AttestedSession(challenge.tee, claims, tee_key, alg, package, challenge.expires, isolation)
        try:
            self.sessions.attested(challenge, session)  # the nonce is spent only by genuine, bound evidence
        except SessionError as exc:
            raise KbsRefusal(503 if exc.reason == "busy" else 401, exc.reason, str(exc), tee=challenge.tee) from None
        token = self.tokens.issue(tee=challenge.tee, claims=trust.claims_to_json(claims),
                                  tee_pubkey=runtime_data["tee-pubkey"], nonce=nonce, policy=self.config.policy_name,
                                  package=package, test_anchor=trust.is_test_anchored(claims), isolation=isolation)
        return session, token

    @staticmethod
    def _binding(claims: Claims, expected: bytes) -> Check:
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

    def resource(self, path: str, cookie: str | None, authorization: str | None) -> tuple[dict[str, str], Resource]:
        """The resource at ``path`` as a JWE to the attested keep's key; :class:`KbsRefusal` otherwise."""
        session = self._attested(cookie, authorization)
        found = self.config.store.get(path)
        if found is None:
            raise KbsRefusal(404, "not-found", f"no resource {path!r} is registered here", tee=session.tee)
        if session.package is None or not hmac.compare_digest(session.package, found.manifest_digest):
            check = Check("kbs.package-binding", False, "the keep is bound to the package registered here",
                          expected=found.manifest_digest, actual=session.package or "no package")
            what = (f"is bound to another package ({session.package})" if session.package else
                    "names no package (runtime-data enarx-package or HOST_DATA / MRCONFIGID)")
            raise KbsRefusal(403, "package-binding", f"the keep {what}; the key of {path} is released only to a "
                             f"keep bound to package {found.manifest_digest}", [check], tee=session.tee)
        checks = trust.parse_keep_policy(found.policy, f"package policy of {path}").appraise(
            session.claims, self.config.verify_at)
        failed = [c for c in checks if not c.passed]
        if failed:
            raise KbsRefusal(403, "package-policy", f"the keep does not satisfy the package policy of {path}: "
                             f"{trust.describe_failures(failed)}", failed, tee=session.tee)
        return teekey.wrap(found.key, session.tee_key, session.tee_alg), found

    def _attested(self, cookie: str | None, authorization: str | None) -> AttestedSession:
        if authorization and authorization.lower().startswith("bearer "):
            try:
                token = self.tokens.verify(authorization[7:].strip())
                tee, sub = next(iter(token["submods"].items()))
                claims = trust.claims_from_json(sub["ear.veraison.annotated-evidence"])
                tee_key, alg = teekey.parse_public(token.get("tee-pubkey"))
                package = token.get(ear.PACKAGE_CLAIM)
                if package is not None and not (isinstance(package, str) and _DIGEST.fullmatch(package)):
                    raise ValueError("malformed package claim")
            except (ear.TokenError, teekey.TeeKeyError, KeyError, ValueError, TypeError, AttributeError) as exc:
                raise KbsRefusal(401, "bad-token", str(exc)) from None
            return AttestedSession(tee, claims, tee_key, alg, package, float(token["exp"]))
        session = self.sessions.session(cookie)
        if session is None:
            raise KbsRefusal(401, "unauthenticated", "attest first (POST /kbs/v0/auth, /kbs/v0/attest) and send "
                             "the session cookie or the attestation token as Authorization: Bearer")
        return session

    # -- publishers -------------------------------------------------------------------------------------
    def register(self, path: str, authorization: str | None, body: Any) -> tuple[Resource, bool]:
        """Record a package's content key and keep policy at ``path`` for an authenticated publisher; the bool
        says whether it is new (the identical registration again is accepted, not stored twice)."""
        try:
            publisher = self.config.publishers.authenticate(authorization)
        except AuthError as exc:
            raise KbsRefusal(exc.status, exc.reason, str(exc)) from None
        repository = path.split("/", 1)[0]
        if publisher.namespace is None or not hmac.compare_digest(repository, publisher.namespace):
            where = (f"{publisher.namespace}/<type>/<tag>" if publisher.namespace else
                     "a namespace: your token's namespace claim is missing or not a valid name")
            raise KbsRefusal(403, "not-owner", f"publishers register only under their own namespace: "
                             f"{repository!r} is not yours (you may register at {where})")
        if not isinstance(body, dict) or not isinstance(body.get("manifest"), str) or not isinstance(
                body.get("key"), str):
            raise KbsRefusal(400, "malformed", "a registration is {\"manifest\": <manifest.jws>, \"key\": <base64url>}")
        try:
            doc = manifest.parse_unverified(body["manifest"])
            if doc.resource != path:
                raise KbsRefusal(400, "resource-mismatch", f"the manifest names resource {doc.resource!r}, not {path!r}")
            key = _b64url(body["key"])
            keys.check_key(key, doc.package_id_bytes, doc.key_id)
            trust.parse_keep_policy(doc.policy, "the manifest's policy")
        except PackageError as exc:
            raise KbsRefusal(400, exc.reason, str(exc)) from None
        resource = Resource(path, key, doc.policy, publisher.identity, doc.package_id, doc.digest)
        try:
            created = self.config.store.put(resource)
        except StoreConflict as exc:
            raise KbsRefusal(409 if exc.reason == "exists" else 403, exc.reason, str(exc)) from None
        return resource, created


def _package_member(runtime_data: dict[str, Any]) -> str | None:
    value = runtime_data.get(evidence.PACKAGE_MEMBER)
    if value is None:
        return None
    if not isinstance(value, str) or not _DIGEST.fullmatch(value):
        raise evidence.EvidenceError(f"runtime-data {evidence.PACKAGE_MEMBER} must be a manifest digest (64 lowercase hex)")
    return value


def _isolation_member(runtime_data: dict[str, Any]) -> str | None:
    """A keep's own statement that it is not isolated: only ever a downgrade (the token's status is then
    never "affirming"), so it is taken as given — but only in the words :mod:`enarx.isolation` defines."""
    from enarx.isolation import ISOLATION_LABELS

    value = runtime_data.get(evidence.ISOLATION_MEMBER)
    if value is not None and value not in ISOLATION_LABELS:
        raise evidence.EvidenceError(f"runtime-data {evidence.ISOLATION_MEMBER} must be one of: "
                                     f"{'; '.join(ISOLATION_LABELS)}")
    return value


def _b64url(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise PackageError("the key is not base64url", "format") from None
