"""A repository's configuration: ``{"public": bool}`` as Enarx, plus an optional keep rule.

``{"public": false, "keeps": {"policy": {…}, "allow_insecure": false}}``: keeps (TLS client certificates
issued by the Steward the server trusts with ``--ca``) may read this private repository's tags and trees
when the claims in their certificate satisfy ``policy`` (the attestation policy language of
:mod:`enarx.attestation.policy`, as JSON) and the certificate names the very tag being read: the keep's
``host_data`` (SEV-SNP) must equal the SHA-256 of the tag's tree root, or ``mrconfigid`` (TDX) its SHA-384.
Claims the Steward marked ``insecure`` (KVM/nil keeps, simulated evidence under a test root) are refused
unless ``allow_insecure`` is true. No ``keeps`` member: no keep access at all.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from enarx.attestation.claims import Claims, claims_from_json
from enarx.attestation.model import AttestationError, Check, Tee
from enarx.attestation.policy import Policy
from enarx.drawbridge.content import ContentError, Entry, canonical


@dataclass(frozen=True)
class KeepRule:
    policy: Policy
    document: dict[str, Any]
    allow_insecure: bool = False


@dataclass(frozen=True)
class RepoConfig:
    public: bool
    keeps: KeepRule | None = None

    @classmethod
    def parse(cls, value: Any) -> RepoConfig:
        """Validate an uploaded configuration (raises :class:`ContentError`)."""
        if not isinstance(value, dict) or not isinstance(value.get("public"), bool):
            raise ContentError("bad-config", 'repository config must be {"public": true|false, …}')
        unknown = set(value) - {"public", "keeps"}
        if unknown:
            raise ContentError("bad-config", f"repository config has unknown member {min(unknown)!r}")
        keeps = value.get("keeps")
        rule = None
        if keeps is not None:
            if not isinstance(keeps, dict) or not isinstance(keeps.get("policy"), dict):
                raise ContentError("bad-config", 'keeps must be {"policy": {…}, "allow_insecure": bool}')
            if set(keeps) - {"policy", "allow_insecure"}:
                raise ContentError("bad-config", "keeps holds only policy and allow_insecure")
            insecure = keeps.get("allow_insecure", False)
            if not isinstance(insecure, bool):
                raise ContentError("bad-config", "keeps.allow_insecure must be true or false")
            try:
                policy = Policy.from_dict(keeps["policy"], "keeps.policy")
            except AttestationError as exc:
                raise ContentError("bad-config", str(exc)) from None
            rule = KeepRule(policy, keeps["policy"], insecure)
        return cls(value["public"], rule)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"public": self.public}
        if self.keeps is not None:
            out["keeps"] = {"policy": self.keeps.document, "allow_insecure": self.keeps.allow_insecure}
        return out

    def encode(self) -> bytes:
        return canonical(self.to_json())


def claims_from_certificate(doc: dict[str, Any]) -> Claims:
    """The Steward's claims document (see :mod:`enarx.steward.issuer`) as typed :class:`Claims`."""
    try:
        return claims_from_json(doc)
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise ContentError("bad-claims", f"the certificate's claims cannot be read: {exc}") from None


def keep_checks(rule: KeepRule | None, claims_doc: dict[str, Any] | None, tag_root: Entry | None) -> list[Check]:
    """The failed checks of a keep reading a tag whose tree root is ``tag_root`` (None: there is no such tag);
    an empty list means access. The answer never tells a keep whether a tag it is not bound to exists: the
    policy is judged first, on the claims alone, and a tag that does not exist fails the binding exactly as a
    tag the keep is not bound to does."""
    if rule is None:
        return [Check("drawbridge.keep-rule", False, "this repository grants no keep access (no keep policy)")]
    if claims_doc is None:
        return [Check("drawbridge.claims", False, "the certificate carries no attested claims")]
    try:
        claims = claims_from_certificate(claims_doc)
    except ContentError as exc:
        return [Check("drawbridge.claims", False, str(exc))]
    failed = [c for c in rule.policy.appraise(claims) if not c.passed]
    if claims_doc.get("insecure", True) and not rule.allow_insecure:
        failed.append(Check("drawbridge.insecure", False, "the keep was certified without hardware evidence "
                            "(KVM/nil or a test root) and the keep policy does not allow_insecure",
                            expected="false", actual="true"))
    return failed or binding_checks(claims, tag_root)


def binding_checks(claims: Claims, tag_root: Entry | None) -> list[Check]:
    """The keep's evidence must name this tag: host_data = SHA-256 (or mrconfigid = SHA-384) of its tree."""
    bindings = {"host_data": "sha-256", "mrconfigid": "sha-384"}
    for name, alg in bindings.items():
        value = claims.measurements.get(name)
        if value is None:
            continue
        expected = tag_root.digests[alg].hex() if tag_root is not None else ""
        if tag_root is not None and hmac.compare_digest(value.lower(), expected):
            return []
        return [Check(f"drawbridge.{name}", False, f"the keep's {name} does not name this tag (or there is no "
                      "such tag)", expected=expected or None, actual=value.lower())]
    if claims.tee == Tee.SGX:
        return [Check("drawbridge.binding", False, "an SGX keep's evidence cannot name a package (SGX has no "
                      "launch-time host data): a private tag is served to SEV-SNP and TDX keeps only")]
    return [Check("drawbridge.binding", False, "the keep's evidence names no package (no host_data or "
                  "mrconfigid claim)")]


def public_checks(failed: list[Check]) -> list[dict[str, Any]]:
    """What a refused keep is told: each failed check's name and detail, never the expected values (the
    digest of a tag the keep is not bound to among them)."""
    return [{"name": c.name, "passed": False, "detail": c.detail} for c in failed]
