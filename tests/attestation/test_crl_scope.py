"""Regression (review): hide a revoked AMD ASK behind a newer CRL of the same issuer with another scope.

AMD's ARK signs two CRLs: KDS ``/vcek/v1/<product>/crl`` (revokes ASKs) and ``/vlek/v1/<product>/crl``
(revokes ASVKs) — same issuer name, same key. ``chain._freshest`` keeps only the *freshest* CRL an issuer
signed and checks the link against it alone. A host whose ASK was revoked sends the VCEK CRL that lists it
*and* the (newer) VLEK CRL that does not: the verifier picks the VLEK CRL, finds the ASK unlisted and calls
revocation "full". The same hole opens whenever an issuer publishes more than one CRL (partitioned CRLs,
distribution points). Every current CRL of the issuer that was presented must be honoured — or a CRL must be
matched to the certificate it covers — and a revocation the verifier holds must never be dropped.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from enarx.attestation.model import CollateralSet
from enarx.attestation.pki import Cert
from enarx.attestation.simulate.pki import RSA_PSS_SHA384, issue_crl
from enarx.attestation.simulate.snp import _amd_name, simulate_snp
from enarx.attestation.verifier import Verifier


def test_a_newer_crl_of_another_scope_does_not_hide_a_revoked_ask():
    sim = simulate_snp(revoke_ask=True)
    verifier = Verifier(anchors=sim.trust_anchors())
    assert verifier.verify(sim.report, sim.collateral).reason == "revoked"  # the VCEK CRL lists the ASK

    vcek_crl = sim.crls[0]
    this_update = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)  # newer than the VCEK CRL (issued a day before)
    vlek_crl = issue_crl(issuer=_amd_name("ARK-Milan"), signing_key=sim.pki.ark_key, algorithm=RSA_PSS_SHA384,
                         this_update=this_update, next_update=this_update + timedelta(days=30), crl_number=2,
                         revoked=[(Cert.from_der(sim.pki.asvk).serial, this_update)])  # lists only the ASVK
    certs = [c for c in sim.collateral.certificates]
    both = CollateralSet(certificates=certs, crls=[vcek_crl, vlek_crl])
    verdict = verifier.verify(sim.report, both)
    assert (verdict.status, verdict.reason) == ("failed", "revoked"), \
        f"{verdict.status} ({verdict.reason}): the ASK listed in a current ARK CRL was accepted"


def test_the_operators_crl_listing_the_ask_is_not_overridden_by_a_keeps_newer_crl_of_another_scope():
    """The Steward holds the VCEK CRL that revokes the ASK (``--collateral``); the keep sends only the newer
    VLEK CRL: not "stale" (it is newer), so it replaced the operator's revocation."""
    sim = simulate_snp(revoke_ask=True)
    held = CollateralSet(crls=[sim.crls[0]])
    verifier = Verifier(anchors=sim.trust_anchors(), collateral=held)
    this_update = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    vlek_crl = issue_crl(issuer=_amd_name("ARK-Milan"), signing_key=sim.pki.ark_key, algorithm=RSA_PSS_SHA384,
                         this_update=this_update, next_update=this_update + timedelta(days=30), crl_number=2)
    keep_sends = CollateralSet(certificates=list(sim.collateral.certificates), crls=[vlek_crl])
    verdict = verifier.verify(sim.report, keep_sends)
    assert (verdict.status, verdict.reason) == ("failed", "revoked"), \
        f"{verdict.status} ({verdict.reason}): the keep's CRL overrode the operator's revocation of the ASK"
