"""The one path validator's CRL rules that apply to every format: a CRL must be current and say until when."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from enarx.attestation.collateral import from_ders
from enarx.attestation.simulate.pki import RSA_PSS_SHA384, issue_crl
from enarx.attestation.simulate.snp import _amd_name, simulate_snp
from enarx.attestation.verifier import Verifier


def with_ark_crl(sim, **times):
    crl = issue_crl(issuer=_amd_name("ARK-Milan"), signing_key=sim.pki.ark_key, algorithm=RSA_PSS_SHA384, **times)
    return from_ders([sim.endorsement_cert, sim.pki.ask, sim.pki.ark], [crl])


def test_a_crl_without_next_update_cannot_be_shown_current():
    sim = simulate_snp(crl=False)
    collateral = with_ark_crl(sim, this_update=datetime.now(UTC) - timedelta(days=1), next_update=None)
    verdict = Verifier(anchors=sim.trust_anchors()).verify(sim.report, collateral)
    assert (verdict.status, verdict.reason) == ("failed", "collateral")
    assert "has no nextUpdate" in verdict.checks[-1].detail


def test_a_crl_issued_after_the_verification_time_is_not_yet_valid():
    sim = simulate_snp(crl=False)
    now = datetime.now(UTC)
    collateral = with_ark_crl(sim, this_update=now + timedelta(days=1), next_update=now + timedelta(days=30))
    verdict = Verifier(anchors=sim.trust_anchors()).verify(sim.report, collateral, at=now)
    assert (verdict.status, verdict.reason) == ("failed", "not-yet-valid")
    assert "is not valid before" in verdict.checks[-1].detail
