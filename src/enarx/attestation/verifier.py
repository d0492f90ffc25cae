"""The one entry point: detect the evidence type by content, verify it, then appraise it under a policy.

``verify → appraise`` are separate stages with separate errors: a ``failed`` verdict means the evidence
is not genuine or not current (signature, chain, root, revocation, expiry, malformed), a ``rejected``
verdict means it is genuine but the policy (or TCB status) refuses it, ``trusted`` means both passed.
The ``reason`` token is stable (see the corpus ``cases.tsv``): ``ok``, ``debug``, ``tcb-*``, ``policy``,
``signature``, ``chain``, ``untrusted-root``, ``revoked``, ``expired``, ``parse``, ``collateral``,
``unsupported``.
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from enarx.attestation import roots
from enarx.attestation.model import (
    AttestationError,
    Check,
    Claims,
    CollateralSet,
    MalformedEvidence,
    TcbStatus,
    TrustAnchors,
    Verdict,
    VerificationError,
)
from enarx.attestation.policy import Policy, rejection_reason

FORMATS = ("snp", "sgx", "tdx", "nitro", "nvidia")
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
    from enarx.attestation.snp.abi import looks_like_report

    if looks_like_report(data):
        return "snp"
    if len(data) >= 8:
        version, key_type, tee_type = struct.unpack_from("<HHI", data, 0)
        if version in (3, 4, 5) and key_type in (2, 3) and tee_type in (0, 0x81):
            return "tdx" if tee_type == 0x81 else "sgx"
    if data[:1] == b"\x84" or data[:2] == b"\xd2\x84":
        return "nitro"  # CBOR COSE_Sign1 (untagged array of 4, or tag 18)
    if len(data) >= 4 and data[0] in (0x10, 0x11, 0x12, 0x13) and data[1] == 0xE0:
        return "nvidia"  # SPDM GET_MEASUREMENTS request followed by its response
    raise MalformedEvidence("unrecognised evidence: not an SEV-SNP report, Intel quote, Nitro document or SPDM report")


Backend = Callable[[bytes, CollateralSet, datetime, TrustAnchors], tuple[Claims, list[Check], list[str]]]


def _verify_snp(data: bytes, collateral: CollateralSet, at: datetime, anchors: TrustAnchors):
    from enarx.attestation.snp.abi import parse_report
    from enarx.attestation.snp.verify import verify_report

    return verify_report(parse_report(data), collateral, at, anchors)


def _verify_intel(data: bytes, collateral: CollateralSet, at: datetime, anchors: TrustAnchors):
    try:
        from enarx.attestation.intel.verify import verify_quote
    except ImportError:
        raise VerificationError("SGX/TDX verification not available in this installation",
                                reason="unsupported") from None
    return verify_quote(data, collateral, at, anchors)


def _verify_optional(module: str, label: str) -> Backend:
    def run(data: bytes, collateral: CollateralSet, at: datetime, anchors: TrustAnchors):
        import importlib

        try:
            mod = importlib.import_module(f"enarx.attestation.{module}")
        except ImportError:
            raise VerificationError(f"{label} verification is not supported yet", reason="unsupported") from None
        return mod.verify(data, collateral, at, anchors)

    return run


BACKENDS: dict[str, Backend] = {
    "snp": _verify_snp,
    "sgx": _verify_intel,
    "tdx": _verify_intel,
    "nitro": _verify_optional("nitro", "AWS Nitro"),
    "nvidia": _verify_optional("nvidia", "NVIDIA SPDM"),
}


class Verifier:
    """Long-lived: trust anchors and policy are fixed; :meth:`verify` is cheap and thread-safe."""

    def __init__(self, *, anchors: TrustAnchors | None = None, policy: Policy | None = None):
        self.anchors = anchors if anchors is not None else roots.builtin_anchors()
        self.policy = policy if policy is not None else Policy.default()

    def verify(
        self,
        evidence: bytes,
        collateral: CollateralSet | None = None,
        *,
        at: datetime | None = None,
        policy: Policy | None = None,
        format: str | None = None,
    ) -> Verdict:
        """Verify then appraise; never raises for bad evidence (the verdict says ``failed``)."""
        at = _aware(at) if at is not None else datetime.now(UTC)
        policy = policy or self.policy
        collateral = collateral if collateral is not None else CollateralSet()
        warnings = list(collateral.warnings)
        if self.anchors.extra:
            names = ", ".join(_subject(a) for a in self.anchors.extra)
            warnings.append(
                f"extra trust anchor(s) configured ({names}): a verdict that relies on them proves nothing "
                "about genuine hardware"
            )
        try:
            if len(evidence) > MAX_EVIDENCE:
                raise MalformedEvidence(f"evidence is {len(evidence)} bytes, more than {MAX_EVIDENCE}")
            data = decode_evidence(evidence)
            fmt = format or detect_format(data)
            if fmt not in BACKENDS:
                raise MalformedEvidence(f"unknown evidence format {fmt!r}")
            claims, checks, more = BACKENDS[fmt](data, collateral, at, self.anchors)
        except AttestationError as exc:
            return Verdict(None, checks=list(exc.checks) + [Check("verify", False, str(exc))],
                           warnings=warnings, status="failed", reason=exc.reason)
        warnings += more
        checks = list(checks) + [Check("verify", True, f"{claims.tee.value} evidence is genuine as of {at.isoformat()}")]
        if claims.tcb_status is TcbStatus.UNKNOWN:
            warnings.append("no TCB collateral supplied: the platform TCB status was not evaluated")
        if claims.platform.get("test_anchor"):
            warnings.append("this evidence chains to a test trust anchor, not a vendor root")
        appraisal = policy.appraise(claims, at)
        checks += appraisal
        failed = [c for c in appraisal if not c.passed]
        if failed:
            return Verdict(claims, checks=checks, warnings=warnings, status="rejected",
                           reason=rejection_reason(failed))
        return Verdict(claims, checks=checks, warnings=warnings, status="trusted", reason="ok")


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


def _subject(cert: Any) -> str:
    try:
        return roots._as_cert(cert).name
    except Exception:  # noqa: BLE001 - only used to name an anchor in a warning
        return "?"


def parse_time(text: str) -> datetime:
    """``--at`` values: ISO 8601 (``2024-01-02``, ``2024-01-02T03:04:05Z``, with offsets) or ``now``."""
    text = text.strip()
    if text.lower() == "now":
        return datetime.now(UTC)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    value = datetime.fromisoformat(text)
    return _aware(value)
