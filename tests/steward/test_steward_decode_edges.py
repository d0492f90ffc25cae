"""Steward refusals that surviving mutants showed untested (docs/mutants.md): each malformed request is refused
with its own reason, not by accident further down the pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest
from _helpers import SGX_CSR, anchor_file, make_csr, snp_csr, spki, steward
from asn1crypto import csr as asn1_csr
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from enarx.attestation import der
from enarx.attestation.envelope import SgxEvidence
from enarx.steward.csr import OID_EXTENSION_REQUEST, OID_SNP
from enarx.steward.service import Refusal

OID_SGX = "1.3.6.1.4.1.58270.1.2"


def _refusal(body: bytes, **kw) -> Refusal:
    with pytest.raises(Refusal) as info:
        steward(kvm=True, **kw).attest(body)
    return info.value


def _csr_with_version(version: int) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    info = der.seq(der.integer(version), der.seq(), spki(key), der.tlv(0xA0, b""))
    return der.seq(info, der.seq(der.oid("1.2.840.10045.4.3.2")),
                   der.bit_string(key.sign(info, ec.ECDSA(hashes.SHA256()))))


def test_only_version_1_csrs_are_read():
    assert _refusal(_csr_with_version(0)).reason == "no-evidence"  # v1 is read (and has no evidence)
    for version in (1, 2):
        refusal = _refusal(_csr_with_version(version))
        assert (refusal.status, refusal.reason) == (400, "malformed-csr")
        assert refusal.detail == f"CSR version {version} is not v1"  # asn1crypto names only v1


def test_an_attribute_other_than_extension_request_is_refused():
    challenge = der.seq(der.oid("1.2.840.113549.1.9.7"), der.set_of(der.utf8("secret")))  # challengePassword
    refusal = _refusal(make_csr(ec.generate_private_key(ec.SECP256R1()), attributes=[challenge]))
    assert refusal.reason == "malformed-csr" and "1.2.840.113549.1.9.7 is not extensionRequest" in refusal.detail


def test_snp_evidence_of_neither_layout_is_malformed_not_legacy():
    key = ec.generate_private_key(ec.SECP384R1())
    refusal = _refusal(make_csr(key, [(OID_SNP, der.seq(der.integer(7)))]))
    assert refusal.reason == "malformed-evidence" and "is not SEQUENCE" in refusal.detail


def _sgx_evidence(corpora: Path) -> SgxEvidence:
    req = asn1_csr.CertificationRequest.load((corpora / "steward-csr" / SGX_CSR).read_bytes())
    (attr,) = req["certification_request_info"]["attributes"]
    (ext,) = attr["values"][0]
    assert ext["extn_id"].dotted == OID_SGX
    return SgxEvidence.load(ext["extn_value"].contents)


def test_sgx_evidence_with_bytes_after_it_is_malformed(corpora: Path):
    value = _sgx_evidence(corpora).dump() + b"\x00\x00"
    refusal = _refusal(make_csr(ec.generate_private_key(ec.SECP256R1()), [(OID_SGX, value)]))
    assert refusal.reason == "malformed-evidence", refusal.detail


def test_sgx_tcb_info_that_is_not_json_is_malformed(corpora: Path):
    evidence = _sgx_evidence(corpora)
    evidence["tcb"]["report"] = b"<tcbInfo/>"
    refusal = _refusal(make_csr(ec.generate_private_key(ec.SECP256R1()), [(OID_SGX, evidence.dump(force=True))]))
    assert (refusal.reason, refusal.detail) == ("malformed-evidence", "TcbPackage tcbInfo is not JSON")


def test_failed_and_rejected_verdicts_are_worded_apart(tmp_path: Path):
    body, sim = snp_csr()
    anchor = anchor_file(tmp_path, sim)
    tampered = bytearray(body)
    tampered[tampered.index(sim.report[:64]) + 0x50] ^= 1  # inside the signed report body: not genuine
    key = ec.generate_private_key(ec.SECP384R1())
    refusal = _refusal(make_csr(key, [(OID_SNP, _snp_value(bytes(tampered)))]), anchors=[anchor])
    assert "evidence not genuine or not current" in refusal.detail, refusal.detail
    policy = {"measurements": {"measurement": {"allow": ["11" * 48]}}}  # genuine, but not allowed
    refusal = _refusal(body, anchors=[anchor], policy=policy)
    assert refusal.reason == "policy" and refusal.detail == "sev-snp evidence refused: measurement is not on the allow list"


def _snp_value(csr_der: bytes) -> bytes:
    req = asn1_csr.CertificationRequest.load(csr_der)
    (attr,) = req["certification_request_info"]["attributes"]
    assert attr["type"].dotted == OID_EXTENSION_REQUEST
    (ext,) = attr["values"][0]
    return ext["extn_value"].contents


@pytest.mark.parametrize("count", [0, 17])
def test_a_bundle_holds_one_to_sixteen_csrs(count):
    one = make_csr(ec.generate_private_key(ec.SECP256R1()), [("1.3.6.1.4.1.58270.1.1", b"")])
    with pytest.raises(Refusal) as info:
        steward(kvm=True).attest_bundle(der.seq(*[one] * count))
    assert (info.value.status, info.value.reason) == (400, "malformed-csr")
    assert f"a bundle holds 1 to 16 CSRs, not {count}" in info.value.detail


def test_more_crls_than_the_cap_are_refused_before_parsing():
    from _helpers import crl_list

    from enarx.steward.csr import MAX_CRLS

    _, sim = snp_csr()
    vcek_and_crls = der.seq(sim.endorsement_cert, crl_list([sim.crls[0]] * (MAX_CRLS + 1)))
    key = ec.generate_private_key(ec.SECP384R1())
    refusal = _refusal(make_csr(key, [(OID_SNP, der.seq(vcek_and_crls, der.octet_string(sim.report)))]))
    assert (refusal.reason, refusal.detail) == ("malformed-evidence", f"{MAX_CRLS + 1} CRLs is more than {MAX_CRLS}")


def test_an_unusable_csr_key_is_named_and_its_check_is_failed():
    key = ec.generate_private_key(ec.SECP256R1())
    bad_point = spki(key)[:-64] + bytes(64)  # an uncompressed point (0, 0): not on the curve
    info = der.seq(der.integer(0), der.seq(), bad_point, der.tlv(0xA0, b""))
    body = der.seq(info, der.seq(der.oid("1.2.840.10045.4.3.2")), der.bit_string(key.sign(info, ec.ECDSA(
        hashes.SHA256()))))
    refusal = _refusal(body)
    assert refusal.reason == "malformed-csr" and refusal.detail.startswith("CSR public key not usable")
    assert [(c.name, c.passed) for c in refusal.checks] == [("csr.malformed-csr", False)]
