"""Regression (review): facts missing from a claims document became passing values when it was read back.

Relying parties (Drawbridge's keep rules on a Steward certificate, the key broker on its own tokens) rebuild
typed claims with ``claims_from_json`` and appraise them again. Issue 8: "a rule whose fact is missing fails".
But a document without ``debug`` reads as ``debug = False``, and an SEV-SNP document without ``platform``
reads as VMPL 0 with a guest policy of 0 (no migration agent): DebugOff and SnpGuestPolicy then pass on facts
nobody stated (e.g. a certificate from a Steward that predates the ``platform`` field, or any other issuer a
repository trusts). Missing TCB status and revocation, by contrast, already read as Unknown / not-checked and
are refused — the same must hold for every fact a rule reads.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from enarx.attestation.claims import claims_from_json
from enarx.attestation.policy import Policy

LATER = (datetime.now(UTC) + timedelta(days=30)).isoformat()
TRUST = {"anchor": "CN=ARK-Milan", "anchor_sha256": "00" * 32, "test_anchor": False, "revocation": "full",
         "revocation_unchecked": [], "collateral_expiry": LATER, "tcb_info": None, "qe_identity": None}
BASE = {"tee": "sev-snp", "measurements": {"measurement": "11" * 48}, "signer": {}, "svns": {"guest_svn": 0},
        "tcb_status": "UpToDate", "advisory_ids": [], "trust": TRUST}


PLATFORM = {"vmpl": 0, "policy": 0x30000, "abi": "1.55", "product": "Milan"}


def _failed(doc):
    return {c.name for c in Policy.default().appraise(claims_from_json(doc)) if not c.passed}


def test_a_complete_document_passes_and_each_rule_reads_its_fact():
    assert _failed({**BASE, "debug": False, "platform": PLATFORM}) == set()
    assert "policy.debug" in _failed({**BASE, "debug": True, "platform": PLATFORM})
    assert "policy.snp.vmpl" in _failed({**BASE, "debug": False, "platform": {**PLATFORM, "vmpl": 3}})


@pytest.mark.parametrize("doc,fact", [
    ({**BASE, "debug": False}, "VMPL"),  # no "platform": VMPL and guest policy unknown
    ({**BASE, "debug": False, "platform": {**PLATFORM, "vmpl": None}}, "VMPL"),
    ({**BASE, "platform": PLATFORM}, "debug"),  # no "debug"
    ({**BASE, "debug": "false", "platform": PLATFORM}, "debug"),
])
def test_a_document_missing_a_fact_a_rule_reads_is_refused(doc, fact):
    """Read as a default (debug false, VMPL 0), a fact nobody stated would pass its rule."""
    with pytest.raises(ValueError, match=fact):
        claims_from_json(doc)
