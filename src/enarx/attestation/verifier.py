"""The one entry point: detect the evidence format, verify it, then appraise it under a policy.

``verify → appraise`` are separate stages with separate errors: a ``failed`` verdict means the evidence
is not genuine or not current (signature, chain, root, revocation, expiry, malformed, stale collateral), a
``rejected`` verdict means it is genuine but the policy refuses it (including collateral the policy
requires and nobody supplied), ``trusted`` means both passed. The ``reason`` token is stable (see the
corpus ``cases.tsv``): ``ok``, ``debug``, ``tcb-*``, ``missing-collateral``, ``revocation-unavailable``,
``tee``, ``policy``, ``signature``, ``chain``, ``untrusted-root``, ``revoked``, ``expired``, ``not-yet-valid``,
``parse``, ``format``, ``collateral``, ``stale-collateral``.

A :class:`Verifier` is long-lived (like a wasmtime ``Engine``): it owns the trust anchors, the policy, the
operator's collateral store and the one bounded cache; :meth:`Verifier.verify` is cheap and thread-safe.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from pathlib import Path

from enarx.attestation import formats, roots
from enarx.attestation.anchors import TrustAnchors
from enarx.attestation.claims import Claims
from enarx.attestation.context import Context
from enarx.attestation.memo import DEFAULT_BYTES, VerifierCache
from enarx.attestation.model import (
    AttestationError,
    Check,
    CollateralSet,
    MalformedEvidence,
    Revocation,
    TcbStatus,
    Verdict,
)
from enarx.attestation.policy import Policy, rejection_reason
from enarx.attestation.store import CollateralStore

FORMATS = tuple(formats.FORMATS)
MAX_EVIDENCE = 1 << 20

_HEX = frozenset(b"0123456789abcdefABCDEF")
_B64 = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_")
_WS = frozenset(b" \t\r\n")


def decode_evidence(data: bytes) -> bytes:
    """Evidence given as hex or base64 text becomes bytes; binary evidence is returned unchanged."""
    data = bytes(data)
    if not data or not all(b in _B64 or b in _WS for b in data[:256]):
        return data  # binary
    stripped = bytes(b for b in data if b not in _WS)
    if len(stripped) < 16:
        return data
    if all(b in _HEX for b in stripped) and len(stripped) % 2 == 0:
        return bytes.fromhex(stripped.decode())
    if all(b in _B64 for b in stripped):
        text = stripped.replace(b"-", b"+").replace(b"_", b"/")
        text += b"=" * (-len(text) % 4)
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            return data
    return data


def detect_format(data: bytes) -> str:
    """``snp``, ``sgx``, ``tdx``, ``nitro`` or ``nvidia`` from the bytes; ``MalformedEvidence`` otherwise."""
    return formats.detect(data).name


class Verifier:
    """Long-lived: trust anchors, policy, collateral store and cache are fixed; :meth:`verify` is thread-safe.

    ``collateral`` is the operator's store (see :mod:`.store`): paths, a :class:`CollateralStore` or a
    :class:`CollateralSet`. ``cache_bytes`` bounds the one cache; ``memo=False`` re-verifies every
    signature on every call (the benchmark's cold verifier)."""

    def __init__(self, *, anchors: TrustAnchors | None = None, policy: Policy | None = None,
                 collateral: CollateralStore | CollateralSet | list[str | Path] | None = None,
                 cache_bytes: int = DEFAULT_BYTES, memo: bool = True):
        self.anchors = anchors if anchors is not None else roots.builtin_anchors()
        self.policy = policy if policy is not None else Policy.default()
        if isinstance(collateral, CollateralSet):
            collateral = CollateralStore.from_set(collateral)
        elif isinstance(collateral, list):
            collateral = CollateralStore.load(collateral)
        self.store: CollateralStore | None = collateral
        self.cache = VerifierCache(cache_bytes, memo=memo)

    def verify(
        self,
        evidence: bytes,
        collateral: CollateralSet | None = None,
        *,
        at: datetime | None = None,
        policy: Policy | None = None,
        format: str | None = None,
    ) -> Verdict:
        """Verify then appraise; never raises for bad evidence (the verdict says ``failed``).

        ``collateral`` is what came *with* the evidence (a keep's CRLs and TCB info, a caller's files); it
        must not be older than what the store holds. ``format`` pins the expected format (the Steward knows
        it from the CSR extension): evidence of another format is refused."""
        at = _aware(at or datetime.now(UTC))
        policy = policy or self.policy
        try:
            claims, checks, warnings = self.genuine(evidence, collateral, at=at, format=format)
        except AttestationError as exc:
            return Verdict(None, checks=[*exc.checks, Check("verify", False, str(exc))],
                           warnings=list(exc.warnings), status="failed", reason=exc.reason)
        checks.append(Check("verify", True, f"{claims.tee.value} evidence is genuine as of {at.isoformat()}"))
        claims = policy.evaluate_tcb(claims)
        _explain(claims, warnings)
        appraisal = policy.appraise(claims, at)
        checks += appraisal
        failed = [c for c in appraisal if not c.passed]
        if failed:
            return Verdict(claims, checks=checks, warnings=warnings, status="rejected",
                           reason=rejection_reason(failed))
        return Verdict(claims, checks=checks, warnings=warnings, status="trusted", reason="ok")

    def genuine(self, evidence: bytes, collateral: CollateralSet | None = None, *, at: datetime | None = None,
                format: str | None = None) -> tuple[Claims, list[Check], list[str]]:
        """The verification stage alone ("is it genuine and current?"): (claims, checks, warnings), or an
        :class:`AttestationError` carrying the checks made and the warnings so far."""
        at = _aware(at or datetime.now(UTC))
        ctx = Context(fmt="?", at=at, anchors=self.anchors, cache=self.cache,
                      supplied=collateral or CollateralSet(), store=self.store)
        ctx.trail.warnings += list(getattr(collateral, "warnings", []) or [])
        try:
            if len(evidence) > MAX_EVIDENCE * 2:
                raise MalformedEvidence(f"evidence of {len(evidence)} bytes is larger than any known format")
            data = decode_evidence(evidence)
            detected = formats.detect(data)
            fmt = formats.get(format) if format else detected
            if fmt is not detected:
                raise ctx.trail.fail("format", f"{detected.name} evidence where {fmt.name} was expected", "format",
                                     MalformedEvidence, expected=fmt.name, actual=detected.name)
            ctx.fmt = fmt.name
            claims = fmt.verify(data, ctx)
        except AttestationError as exc:
            if not exc.checks:
                exc.checks = list(ctx.trail.checks)
            exc.warnings = ctx.trail.warnings
            raise
        if claims.provenance.test_anchor:
            ctx.trail.warn(f"the chain ends at an extra trust anchor ({claims.provenance.anchor}), a test anchor "
                           "configured explicitly, not a vendor root: this proves nothing about real hardware")
        return claims, ctx.trail.checks, ctx.trail.warnings


def _explain(claims: Claims, warnings: list[str]) -> None:
    """What the verdict must state even when the policy accepts it."""
    status = claims.tcb_status
    tee = claims.tee.value
    if status is TcbStatus.NOT_EVALUATED:
        if tee == "sev-snp":
            product = getattr(claims, "product", None) or "PRODUCT"
            warnings.append(f"TCB status not evaluated: AMD publishes no TCB status; give the policy a minimum "
                            f"TCB ([snp.min_tcb.{product}]) to evaluate it")
        else:
            warnings.append(f"TCB status not evaluated: the vendor publishes no TCB status for {tee}")
    elif status is TcbStatus.UNKNOWN:
        warnings.append("no TCB info: the platform TCB status is unknown")
    provenance = claims.provenance
    if provenance.revocation is Revocation.NOT_AVAILABLE and not any("revocation not available" in w
                                                                     for w in warnings):
        warnings.append(f"revocation not available: the vendor publishes no offline revocation source for {tee}")


def verify_evidence(
    evidence: bytes,
    collateral: CollateralSet | None = None,
    *,
    at: datetime | None = None,
    policy: Policy | None = None,
    anchors: TrustAnchors | None = None,
) -> Verdict:
    """Functional shortcut for ``Verifier(anchors=…, policy=…).verify(evidence, collateral, at=…)``."""
    return Verifier(anchors=anchors, policy=policy).verify(evidence, collateral, at=at)


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def parse_time(text: str) -> datetime:
    """``--at`` values: ISO 8601 (``2024-01-02``, ``2024-01-02T03:04:05Z``, with offsets) or ``now``."""
    text = text.strip()
    if text.lower() == "now":
        return datetime.now(UTC)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    value = datetime.fromisoformat(text)
    return _aware(value)
