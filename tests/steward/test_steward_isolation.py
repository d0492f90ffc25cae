"""A keep without isolation (nil: a process; kvm under TCG: emulated) says so in its CSR, and the certificate the
Steward issues says so too: ``isolation`` in its claims, and ``insecure``. Malformed labels are refused."""

from __future__ import annotations

import pytest
from _helpers import anchor_file, crl_list, make_csr, snp_csr, spki, steward
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enarx.attestation import der
from enarx.attestation.binding import report_data_for
from enarx.attestation.model import Tee
from enarx.attestation.simulate.snp import simulate_snp
from enarx.isolation import EMULATED, OID_ISOLATION, PROCESS
from enarx.protocol.frames import ProtocolError
from enarx.protocol.messages import LaunchRequest
from enarx.runtime.attest.csr import build_csr
from enarx.steward.csr import OID_EXTENSION_REQUEST, OID_KVM, OID_SNP, CsrError, DecodedCsr, decode_csr
from enarx.steward.issuer import read_claims
from enarx.steward.service import Refusal, _declared


@pytest.fixture(scope="module")
def anchor(tmp_path_factory):
    _, sim = snp_csr()
    return anchor_file(tmp_path_factory.mktemp("anchor"), sim)


def _kvm_csr(*labels: bytes, critical: bool = False) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    exts = [der.extension(OID_KVM, b"", False)] + [der.extension(OID_ISOLATION, v, critical) for v in labels]
    attributes = [der.seq(der.oid(OID_EXTENSION_REQUEST), der.set_of(der.seq(*exts)))]
    return make_csr(key, attributes=attributes)


def test_a_nil_keep_certificate_says_process_no_isolation() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    issued = steward(kvm=True).attest(build_csr(key, OID_KVM, b"", isolation=PROCESS))
    assert issued.claims["isolation"] == PROCESS and issued.claims["insecure"] is True
    assert read_claims(issued.cert)["isolation"] == PROCESS  # in the certificate, not only in the answer


def test_an_emulated_keep_with_simulated_evidence_is_labelled(anchor) -> None:
    csr, _sim = snp_csr()
    assert "isolation" not in steward(anchors=[anchor]).attest(csr).claims  # an Enarx CSR: claims as before
    key = ec.generate_private_key(ec.SECP384R1())
    sim = simulate_snp(report_data=report_data_for(spki(key), Tee.SNP, None))
    evidence = der.seq(der.seq(sim.endorsement_cert, crl_list(sim.crls)), der.octet_string(sim.report))
    issued = steward(anchors=[anchor]).attest(build_csr(key, OID_SNP, evidence, isolation=EMULATED))
    claims = read_claims(issued.cert)
    assert claims["tee"] == "sev-snp" and claims["isolation"] == EMULATED and claims["insecure"] is True


def test_the_label_makes_any_certificate_insecure() -> None:
    """Even evidence a real root trusted: the keep's own word that it is not isolated is a downgrade."""
    csr = DecodedCsr(None, b"", "", [], None, EMULATED)
    document = _declared({"tee": "sev-snp", "insecure": False, "test_anchor": False}, csr)
    assert document == {"tee": "sev-snp", "insecure": True, "test_anchor": False, "isolation": EMULATED}
    untouched = _declared({"insecure": False}, DecodedCsr(None, b"", "", [], None, None))
    assert untouched == {"insecure": False}


@pytest.mark.parametrize(("labels", "critical", "message"), [
    ((der.utf8("isolated, trust me"),), False, "is not one of"),
    ((der.octet_string(PROCESS.encode()),), False, "not a UTF8String"),
    ((der.utf8(PROCESS),), True, "must not be critical"),
    ((der.utf8(PROCESS), der.utf8(EMULATED)), False, "more than one isolation label"),
])
def test_malformed_labels_are_refused(labels, critical, message) -> None:
    with pytest.raises(Refusal) as refused:
        steward(kvm=True).attest(_kvm_csr(*labels, critical=critical))
    assert refused.value.status == 400 and refused.value.reason == "malformed-csr"
    assert message in refused.value.detail


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.binary(max_size=64),  # anything
    st.text(max_size=40).map(der.utf8),  # well-formed strings, labels or not
    st.sampled_from([PROCESS, EMULATED]).map(lambda label: der.utf8(label)[:-1] + b"\xff"),  # a byte off
    st.binary(max_size=40).map(lambda raw: der.tlv(0x0C, raw)),  # UTF8String tags holding any bytes
))
def test_any_label_value_is_a_typed_answer(value: bytes) -> None:
    try:
        csr = decode_csr(_kvm_csr(value))
    except CsrError as exc:
        assert exc.status == 400
    else:
        assert csr.isolation in (PROCESS, EMULATED)


def test_the_host_cannot_hand_the_keep_an_unknown_label() -> None:
    good = LaunchRequest("m.wasm", isolation=EMULATED).encode(b"")
    assert LaunchRequest.decode(good)[0].isolation == EMULATED
    bad = LaunchRequest("m.wasm", isolation="hardware isolated").encode(b"")
    with pytest.raises(ProtocolError, match="isolation"):
        LaunchRequest.decode(bad)


def test_the_decision_log_names_the_label(caplog) -> None:
    """The operator reading the Steward's log sees which certificates went to keeps without isolation (a
    simulated SEV-SNP nil keep logs as tee sev-snp: only the label tells it apart)."""
    import json
    import logging

    from starlette.testclient import TestClient

    from enarx.steward.app import CT_PKCS10, create_app

    key = ec.generate_private_key(ec.SECP256R1())
    client = TestClient(create_app(steward(kvm=True)))
    with caplog.at_level(logging.INFO, logger="enarx.steward.decision"):
        for label in (PROCESS, None):
            csr = build_csr(key, OID_KVM, b"", isolation=label)
            assert client.post("/", content=csr, headers={"content-type": CT_PKCS10}).status_code == 200
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "enarx.steward.decision"]
    labelled, plain = (line["certs"][0] for line in lines)
    assert labelled["isolation"] == PROCESS and labelled["insecure"] is True
    assert "isolation" not in plain and plain["insecure"] is True
