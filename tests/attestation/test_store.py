"""The Verifier's collateral store: it fills in what evidence does not carry, prefers the freshest copy, and
refuses collateral supplied with evidence that is older than what it holds (finding 1's rollback)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from enarx.attestation.collateral import CollateralError, from_ders
from enarx.attestation.model import CollateralSet, Tee
from enarx.attestation.pki import Cert, Crl
from enarx.attestation.simulate.intel import (
    _pcs_document,
    _raw_sign,
    platform_collateral,
    simulate_sgx,
    simulate_tdx,
)
from enarx.attestation.simulate.persistent import SimulatorPki
from enarx.attestation.simulate.pki import RSA_PSS_SHA384, issue_crl
from enarx.attestation.simulate.snp import _amd_name, simulate_snp
from enarx.attestation.store import CollateralStore
from enarx.attestation.verifier import Verifier


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return SimulatorPki(tmp_path_factory.mktemp("sim"))


@pytest.mark.parametrize("make", [simulate_sgx, simulate_tdx])
def test_store_fills_in_what_the_quote_does_not_carry(pki, make, tmp_path):
    intel = pki.intel()
    sim = make(pki=intel, include_tcb_info=False, include_qe_identity=False, include_crls=False)
    bare = Verifier(anchors=sim.anchors).verify(sim.quote, at=sim.at)
    assert (bare.status, bare.reason) == ("rejected", "missing-collateral")
    pki.write_collateral(sim.at)
    held = Verifier(anchors=sim.anchors, collateral=[pki.collateral_dir])
    verdict = held.verify(sim.quote, at=sim.at)
    assert (verdict.status, verdict.reason) == ("trusted", "ok"), [c for c in verdict.checks if not c.passed]
    p = verdict.claims.provenance
    assert p.tcb_info and p.qe_identity and p.revocation.value == "full"


def ark_crl(sim, later: timedelta, *, number: int, revoked: list | None = None) -> bytes:
    """An ARK CRL of ``sim``'s PKI issued ``later`` than the one the simulated keep sends."""
    base = Crl.from_der(sim.crls[0])
    return issue_crl(issuer=_amd_name("ARK-Milan"), signing_key=sim.pki.ark_key, algorithm=RSA_PSS_SHA384,
                     this_update=base.this_update + later, next_update=base.next_update, crl_number=number,
                     revoked=revoked or [])


def test_older_tcb_info_than_the_store_holds_is_refused(pki):
    intel = pki.intel()
    keep = simulate_sgx(pki=intel)  # the keep's TCB info: evaluation data number 17
    files = platform_collateral(Tee.SGX, intel, keep.at)
    name = next(n for n in files if "tcbinfo" in n)
    inner = json.loads(files[name])["tcbInfo"]
    assert inner["tcbEvaluationDataNumber"] == 17
    inner["tcbEvaluationDataNumber"] = 18  # the operator refreshed after a TCB recovery
    body = json.dumps(inner, separators=(",", ":")).encode()
    store = CollateralSet(certificates=list(keep.collateral.certificates),
                          json_documents=[(name, _pcs_document("tcbInfo", body, _raw_sign(intel.tcb_key, body)))])
    verifier = Verifier(anchors=keep.anchors, collateral=store)
    verdict = verifier.verify(keep.quote, keep.collateral, at=keep.at)
    assert (verdict.status, verdict.reason) == ("failed", "stale-collateral")
    assert "older than the one this verifier holds" in verdict.checks[-1].detail
    # without the keep's older copy, the store's TCB info decides
    docs = [(n, r) for n, r in keep.collateral.json_documents if "tcbinfo" not in n]
    rest = CollateralSet(certificates=keep.collateral.certificates, crls=keep.collateral.crls, json_documents=docs)
    verdict = verifier.verify(keep.quote, rest, at=keep.at)
    assert verdict.status == "trusted" and verdict.claims.tcb_evaluation_data_number == 18


def test_older_crl_than_the_store_holds_is_refused():
    sim = simulate_snp()
    verifier = Verifier(anchors=sim.trust_anchors(), collateral=CollateralSet(crls=[ark_crl(sim, timedelta(hours=12),
                                                                                            number=2)]))
    verdict = verifier.verify(sim.report, sim.collateral)
    assert (verdict.status, verdict.reason) == ("failed", "stale-collateral")
    # without the keep's CRL the store's is used: revocation checked, trusted
    vcek_only = from_ders([sim.endorsement_cert, sim.pki.ask, sim.pki.ark])
    assert verifier.verify(sim.report, vcek_only).status == "trusted"


def test_the_freshest_crl_decides():
    sim = simulate_snp()
    ask = Cert.from_der(sim.pki.ask)
    revoking = ark_crl(sim, timedelta(hours=1), number=2, revoked=[(ask.serial, Crl.from_der(sim.crls[0]).this_update)])
    both = CollateralSet(certificates=sim.collateral.certificates, crls=[sim.crls[0], revoking])
    verdict = Verifier(anchors=sim.trust_anchors()).verify(sim.report, both)
    assert (verdict.status, verdict.reason) == ("failed", "revoked")


def test_unreadable_store_is_a_clear_error(tmp_path):
    (tmp_path / "junk.der").write_bytes(b"\x30\x03\x02\x01\x00")
    with pytest.raises(CollateralError):
        CollateralStore.load([tmp_path / "junk.der"])
    with pytest.raises(CollateralError, match="no such file"):
        CollateralStore.load([tmp_path / "missing"])
    bad_bundle = tmp_path / "b.tar.gz"
    import io
    import tarfile

    with tarfile.open(bad_bundle, "w:gz") as tar:
        data = b"x"
        info = tarfile.TarInfo("x.pem")
        info.size = 1
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(CollateralError, match="MANIFEST"):
        CollateralStore.load([bad_bundle])


@pytest.mark.parametrize("field", ["crls", "raw_crls", "certificates", "raw_certificates"])
def test_unparsable_collateral_handed_to_a_verifier_is_a_collateral_error(field):
    """Collateral given in memory (``Verifier(collateral=CollateralSet(...))``, the Python API) is checked when
    the Verifier is made, and a bad item is the same :class:`CollateralError` a bad file is — the error
    callers catch for collateral — not an evidence parse error."""
    with pytest.raises(CollateralError, match="collateral store"):
        Verifier(collateral=CollateralSet(**{field: [b"\x30\x03\x02\x01\x00"]}))
