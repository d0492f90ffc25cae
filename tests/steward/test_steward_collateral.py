"""The Steward's decision with its own collateral (``--collateral``): what keeps do not send comes from
there, and empty or stale collateral from a keep gets nothing certified."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from _helpers import CA, make_csr, spki
from cryptography.hazmat.primitives.asymmetric import ec

from enarx.attestation.binding import report_data_for
from enarx.attestation.envelope import OID_SGX, OID_TDX, intel_extension
from enarx.attestation.model import Tee
from enarx.attestation.policy import Policy
from enarx.attestation.simulate.intel import simulate_sgx, simulate_tdx
from enarx.attestation.simulate.persistent import SimulatorPki
from enarx.steward.issuer import read_claims
from enarx.steward.service import Refusal, Steward, StewardConfig, load_insecure_anchors


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> SimulatorPki:
    pki = SimulatorPki(tmp_path_factory.mktemp("simulator"))
    pki.write_collateral()
    return pki


def steward(pki: SimulatorPki, *, collateral: bool = True, policy: Policy | None = None) -> Steward:
    anchors, intermediates = load_insecure_anchors(pki.anchor_files())
    return Steward(StewardConfig(ca=CA, policy=policy or Policy.default(), insecure_anchors=anchors,
                                 insecure_intermediates=intermediates,
                                 collateral=[pki.collateral_dir] if collateral else []))


def intel_csr(pki: SimulatorPki, tee: Tee, *, tcb_info: bytes = b"", crls: bool = False):
    key = ec.generate_private_key(ec.SECP256R1())
    make = simulate_tdx if tee is Tee.TDX else simulate_sgx
    sim = make(report_data=report_data_for(spki(key), tee), pki=pki.intel())
    crl_list = [("https://example.test/crl", sim.files[n]) for n in ("root_ca.crl.der", "pck_platform.crl.der")] \
        if crls else []
    oid = OID_TDX if tee is Tee.TDX else OID_SGX
    value = intel_extension(sim.quote, crl_list, [], tcb_info)  # as real keeps send: no QE identity
    return make_csr(key, [(oid, value)]), sim


@pytest.mark.parametrize("tee", [Tee.TDX, Tee.SGX])
def test_empty_tcb_info_and_crl_list_certify_nothing_without_the_stewards_collateral(pki, tee):
    """Finding 1: tcbInfo "{}" and an empty CRL list were accepted; finding 6: with its own collateral the
    Steward certifies the same keep."""
    for tcb_info in (b"", b"{}"):
        body, _ = intel_csr(pki, tee, tcb_info=tcb_info)
        with pytest.raises(Refusal) as info:
            steward(pki, collateral=False).attest(body)
        assert (info.value.status, info.value.reason) == (403, "missing-collateral")
        assert {"policy.tcb-status", "policy.revocation", "policy.collateral.qe-identity"} <= \
            {c.name for c in info.value.checks}
        issued = steward(pki).attest(body)
        claims = read_claims(issued.cert)
        assert claims["tee"] == tee.value and claims["tcb_status"] == "UpToDate" and claims["trust"]["revocation"] == "full"
        assert claims["test_anchor"] is True


def test_a_keep_cannot_roll_back_to_an_older_crl(pki: SimulatorPki, tmp_path: Path):
    """The Steward's collateral is newer than the CRLs this keep sends: refused as stale."""
    body, sim = intel_csr(pki, Tee.SGX, crls=True)  # the keep's CRLs: issued an hour before now
    pki.write_collateral(sim.at + timedelta(hours=2))  # the operator refreshed the Steward's collateral
    with pytest.raises(Refusal) as info:
        steward(pki).attest(body)
    assert (info.value.status, info.value.reason) == (403, "stale-collateral")
    assert "older than the one this verifier holds" in info.value.detail
    pki.write_collateral()  # back to the fixture's state


def test_unreadable_collateral_directory_is_refused_at_start(tmp_path):
    from enarx.attestation.collateral import CollateralError

    with pytest.raises(CollateralError, match="no such file"):
        Steward(StewardConfig(ca=CA, collateral=[tmp_path / "missing"]))


def test_renewed_collateral_takes_effect_on_reload_and_a_bad_renewal_changes_nothing(tmp_path: Path):
    """An operator renews the Steward's CRLs and TCB info without a restart; a broken renewal keeps the
    collateral in force (still checked for expiry on every request) instead of dropping it."""
    pki = SimulatorPki(tmp_path / "sim")
    pki.intel()
    pki.collateral_dir.mkdir(parents=True)  # started before the first download: nothing held yet
    keep = steward(pki)
    body, _ = intel_csr(pki, Tee.TDX)
    with pytest.raises(Refusal) as info:
        keep.attest(body)
    assert info.value.reason == "missing-collateral"

    pki.write_collateral()
    assert keep.reload_collateral() is True
    assert read_claims(keep.attest(body).cert)["tcb_status"] == "UpToDate"

    tcb_info = next(pki.collateral_dir.glob("tdx-tcbinfo-*.json"))
    tcb_info.write_bytes(b'{"tcbInfo": ')  # a truncated download
    assert keep.reload_collateral() is False
    assert read_claims(keep.attest(body).cert)["tcb_status"] == "UpToDate"


def test_sighup_reloads_a_running_stewards_collateral(pki: SimulatorPki, tmp_path: Path):
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "enarx", "steward", "serve", "--generate-ca", "t", "--port", "0",
                             "--collateral", str(pki.collateral_dir)], stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in proc.stderr:  # type: ignore[union-attr]
            lines.append(line)
            if "listening on" in line:
                break
        proc.send_signal(signal.SIGHUP)
        for line in proc.stderr:  # type: ignore[union-attr]
            lines.append(line)
            if "collateral reloaded" in line:
                break
        assert "collateral reloaded" in lines[-1] and str(pki.collateral_dir) in lines[-1], lines
        assert proc.poll() is None  # still serving
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_reload_does_not_roll_the_stewards_collateral_back(tmp_path: Path):
    pki = SimulatorPki(tmp_path / "sim")
    body, sim = intel_csr(pki, Tee.SGX, crls=True)  # the keep sends the CRLs it had an hour ago
    pki.write_collateral(sim.at + timedelta(hours=2))  # the Steward holds newer ones
    keep = steward(pki)
    with pytest.raises(Refusal) as info:
        keep.attest(body)
    assert info.value.reason == "stale-collateral"

    pki.write_collateral(sim.at - timedelta(hours=3))  # replayed/restored: older than what the Steward held
    assert keep.reload_collateral() is False  # a replayed download or a restored backup is refused
    with pytest.raises(Refusal) as info:
        keep.attest(body)
    assert info.value.reason == "stale-collateral", "the reload rolled the Steward's CRLs back"
