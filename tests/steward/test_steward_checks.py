"""Steward checks that decide trust, each with a test that fails when the check is removed (issue 9):
evidence TEE vs extension OID, a critical evidence extension, more than one evidence extension."""

from __future__ import annotations

from pathlib import Path

import pytest
from _helpers import make_csr, snp_csr, spki, steward
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.testclient import TestClient

from enarx.attestation.binding import report_data_for
from enarx.attestation.envelope import intel_extension
from enarx.attestation.model import Tee
from enarx.attestation.simulate.persistent import SimulatorPki
from enarx.runtime.attest.simulated import INTEL_PCK_CRL_URL, INTEL_ROOT_CRL_URL
from enarx.steward.app import CT_PKCS10, create_app
from enarx.steward.csr import OID_KVM, OID_SGX, OID_SNP, OID_TDX
from enarx.steward.issuer import read_claims


@pytest.fixture(scope="module")
def intel(tmp_path_factory) -> tuple[Path, object]:
    directory = tmp_path_factory.mktemp("simulator")
    return directory / "intel" / "root.pem", SimulatorPki(directory).intel()


def _intel_csr(pki, quote_tee: Tee, oid: str) -> bytes:
    """A P-256 CSR whose ``oid`` extension carries a simulated ``quote_tee`` quote with its collateral."""
    from enarx.attestation.simulate.intel import simulate_sgx, simulate_tdx

    key = ec.generate_private_key(ec.SECP256R1())
    report_data = report_data_for(spki(key), Tee(oid == OID_TDX and "tdx" or "sgx"))
    sim = (simulate_tdx if quote_tee is Tee.TDX else simulate_sgx)(report_data=report_data, pki=pki)
    crls = [(INTEL_ROOT_CRL_URL, sim.files["root_ca.crl.der"]), (INTEL_PCK_CRL_URL, sim.files["pck_platform.crl.der"])]
    tcb_certs = [pki.tcb.public_bytes(serialization.Encoding.DER), pki.root.public_bytes(serialization.Encoding.DER)]
    qe_identity = sim.files["qe_identity.json"] if oid == OID_TDX else None
    return make_csr(key, [(oid, intel_extension(sim.quote, crls, tcb_certs, sim.files["tcbinfo.json"], qe_identity))])


def _post(client: TestClient, csr: bytes):
    return client.post("/", content=csr, headers={"content-type": CT_PKCS10})


def test_quotes_under_their_own_oid_are_certified(intel) -> None:
    """The baseline the mismatch tests depend on: both quotes verify when the OID matches."""
    root, pki = intel
    # Enarx's SGX envelope has no field for a QE identity and this Steward holds no collateral (--collateral):
    # the policy says explicitly that SGX keeps are certified without one
    relaxed = {"sgx": {"allow_missing_collateral": ["qe_identity"]}}
    client = TestClient(create_app(steward(anchors=[root], policy=relaxed)))
    for tee, oid in ((Tee.SGX, OID_SGX), (Tee.TDX, OID_TDX)):
        resp = _post(client, _intel_csr(pki, tee, oid))
        assert resp.status_code == 200, resp.text
        from _helpers import split_chain

        assert read_claims(split_chain(resp.content)[1])["tee"] == tee.value


@pytest.mark.parametrize("quote_tee,oid", [(Tee.TDX, OID_SGX), (Tee.SGX, OID_TDX)])
def test_evidence_tee_must_match_the_extension_oid(intel, quote_tee, oid) -> None:
    root, pki = intel
    resp = _post(TestClient(create_app(steward(anchors=[root]))), _intel_csr(pki, quote_tee, oid))
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert body["reason"] == "tee-mismatch"
    named = "sgx" if oid == OID_SGX else "tdx"
    assert f"under the {named} extension OID is a {quote_tee.value} quote" in body["detail"]


def test_a_critical_evidence_extension_is_refused() -> None:
    csr = make_csr(ec.generate_private_key(ec.SECP256R1()), [(OID_KVM, b"")], critical=True)
    body = _post(TestClient(create_app(steward(kvm=True))), csr).json()  # KVM accepted: only criticality refuses
    assert body["status"] == 400 and body["reason"] == "malformed-evidence"
    assert f"evidence extension {OID_KVM} must not be critical" in body["detail"]


def test_more_than_one_evidence_extension_is_refused() -> None:
    snp, _ = snp_csr()
    key = ec.generate_private_key(ec.SECP384R1())
    from asn1crypto import csr as asn1_csr

    snp_value = asn1_csr.CertificationRequest.load(snp)["certification_request_info"]["attributes"][0]["values"][0][0][
        "extn_value"].contents
    for extensions in ([(OID_KVM, b""), (OID_SNP, snp_value)], [(OID_KVM, b""), (OID_KVM, b"")]):
        body = _post(TestClient(create_app(steward(kvm=True))), make_csr(key, extensions)).json()
        assert body["status"] == 400 and body["reason"] == "malformed-csr"
        assert "more than one attesting extension" in body["detail"]
