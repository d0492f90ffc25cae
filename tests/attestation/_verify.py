"""The verification stage alone ("is it genuine?"), as the format tests call it; imported as ``_verify``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from enarx.attestation.anchors import TrustAnchors
from enarx.attestation.model import CollateralSet
from enarx.attestation.verifier import Verifier


def verify_quote(evidence: bytes, collateral: CollateralSet | None, at: datetime, anchors: TrustAnchors,
                 **kw: Any) -> tuple[Any, list[Any], list[str]]:
    """(claims, checks, warnings), or the typed error: a fresh verifier each time (no memo carried over)."""
    return Verifier(anchors=anchors, **kw).genuine(evidence, collateral, at=at)
