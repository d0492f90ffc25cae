"""The one seam between provisioning and the attestation core: parse keep policies, verify, appraise.

The broker (``enarx kbs serve``), ``enarx push`` and the package manifest all go through these three
functions, so when the attestation core's API changes (typed claims, rule objects, a Verifier that owns
its collateral) only this module follows it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from enarx.attestation.anchors import TrustAnchors
from enarx.attestation.claims import Claims
from enarx.attestation.claims import claims_from_json as _claims_from_json
from enarx.attestation.model import AttestationError, Check, CollateralSet, Verdict
from enarx.attestation.policy import Policy
from enarx.attestation.verifier import Verifier
from enarx.packaging.errors import PackageError


def parse_policy(text: str, source: str = "policy") -> Policy:
    """A keep policy in the attestation policy language (TOML); ``PackageError("policy")`` if invalid."""
    try:
        return Policy.from_toml(text, source)
    except AttestationError as exc:
        raise PackageError(f"keep policy does not parse: {exc}", "policy") from None


def default_policy() -> Policy:
    return Policy.default()


def make_verifier(anchors: TrustAnchors, policy: Policy) -> Verifier:
    return Verifier(anchors=anchors, policy=policy)


def verify(verifier: Verifier, evidence: bytes, collateral: CollateralSet, *, fmt: str,
           at: datetime | None = None) -> Verdict:
    """Genuineness plus the verifier's own policy; never raises for bad evidence (the verdict says why)."""
    return verifier.verify(evidence, collateral, at=at, format=fmt)


def appraise(policy: Policy, claims: Claims, at: datetime | None = None) -> list[Check]:
    """The checks of ``policy`` on already verified ``claims`` (failed ones have ``passed=False``)."""
    return policy.appraise(claims, at)


def failed_rules(checks: list[Check]) -> list[dict[str, Any]]:
    """The failed checks as JSON, for problem bodies and one-line messages."""
    return [c.to_json() for c in checks if not c.passed]


def describe_failures(checks: list[Check]) -> str:
    """``name (expected …, actual …); …`` for the failed checks."""
    parts = []
    for c in checks:
        if c.passed:
            continue
        text = c.name
        if c.expected is not None or c.actual is not None:
            text += f" (expected {c.expected}, actual {c.actual})"
        parts.append(text)
    return "; ".join(parts)


def claims_to_json(claims: Claims) -> dict[str, Any]:
    return claims.to_json()


def claims_from_json(doc: dict[str, Any]) -> Claims:
    """Rebuild verified claims from :func:`claims_to_json` (e.g. out of a token this broker signed)."""
    return _claims_from_json(doc)
