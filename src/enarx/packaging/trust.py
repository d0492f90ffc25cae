"""The one seam between provisioning and the attestation core: parse keep policies, verify, appraise.

The broker (``enarx kbs serve``), ``enarx push`` and the package manifest all go through these three
functions, so when the attestation core's API changes (typed claims, rule objects, a Verifier that owns
its collateral) only this module follows it.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from enarx.attestation.anchors import TrustAnchors
from enarx.attestation.claims import Claims
from enarx.attestation.claims import claims_from_json as _claims_from_json
from enarx.attestation.model import AttestationError, Check, CollateralSet, Verdict
from enarx.attestation.policy import Policy
from enarx.attestation.verifier import Verifier
from enarx.packaging.errors import PackageError

ALLOW_TEST_ANCHORS = "allow_test_anchors"


@dataclass(frozen=True)
class KeepPolicy:
    """A package's keep policy: the attestation policy language plus one provisioning rule,
    ``allow_test_anchors`` (default false): a key is released to evidence that chains to a test root (the
    simulator's, trusted by a broker or an owner with ``--insecure-trust-anchor``) only if the publisher
    said so in the signed manifest."""

    attestation: Policy
    allow_test_anchors: bool = False

    def appraise(self, claims: Claims, at: datetime | None = None) -> list[Check]:
        checks = list(self.attestation.appraise(claims, at))
        if is_test_anchored(claims):
            checks.append(Check(f"policy.{ALLOW_TEST_ANCHORS}", self.allow_test_anchors,
                                "evidence that chains to a test root needs allow_test_anchors = true",
                                expected="a vendor root", actual="a test trust anchor (simulated evidence)"))
        return checks


def _toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PackageError(f"{source}: not valid TOML: {exc}", "policy") from None
    except RecursionError:
        raise PackageError(f"{source}: nested too deeply to be a policy", "policy") from None


def _policy(data: dict[str, Any], source: str) -> Policy:
    try:
        return Policy.from_dict(data, source)
    except AttestationError as exc:
        raise PackageError(f"keep policy does not parse: {exc}", "policy") from None
    except RecursionError:
        raise PackageError(f"{source}: nested too deeply to be a policy", "policy") from None


def parse_policy(text: str, source: str = "policy") -> Policy:
    """An attestation policy (the broker's or an owner's own, TOML); ``PackageError("policy")`` if invalid."""
    return _policy(_toml(text, source), source)


def parse_keep_policy(text: str, source: str = "keep policy") -> KeepPolicy:
    """A package's keep policy (see :class:`KeepPolicy`); ``PackageError("policy")`` if invalid."""
    data = _toml(text, source)
    allow = data.pop(ALLOW_TEST_ANCHORS, False)
    if not isinstance(allow, bool):
        raise PackageError(f"{source}: {ALLOW_TEST_ANCHORS} must be true or false", "policy")
    return KeepPolicy(_policy(data, source), allow)


def is_test_anchored(claims: Claims) -> bool:
    """The evidence chains to a test trust anchor (``--insecure-trust-anchor``), not a vendor root."""
    return claims.test_anchor


def host_bound_digest(claims: Claims) -> str | None:
    """The 32-byte value (hex) the host bound into the keep at launch — a manifest digest, a publisher key's
    thumbprint: SEV-SNP HOST_DATA, or TDX MRCONFIGID holding it followed by 16 zero bytes; ``None`` when
    nothing (all zeros) is bound."""
    host_data = claims.measurements.get("host_data") or ""
    if len(host_data) == 64 and host_data.strip("0"):
        return host_data
    config_id = claims.measurements.get("mrconfigid") or ""
    if len(config_id) == 96 and config_id[:64].strip("0") and not config_id[64:].strip("0"):
        return config_id[:64]
    return None


def default_policy() -> Policy:
    return Policy.default()


def make_verifier(anchors: TrustAnchors, policy: Policy, held: CollateralSet | None = None) -> Verifier:
    """A verifier holding the operator's collateral (``--collateral`` and built-in intermediates) as its store:
    it fills in what evidence does not carry and is the reference for freshness, so a keep cannot send a CRL
    or TCB info older than the one held (merged into the evidence's own collateral it would be just another
    candidate)."""
    from enarx.attestation.store import CollateralStore

    return Verifier(anchors=anchors, policy=policy, collateral=CollateralStore.from_set(held or CollateralSet()))


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
