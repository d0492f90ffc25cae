"""Simulated SGX/TDX evidence: round trips of every settable field and the negatives verify must catch."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest
from _verify import verify_quote
from cryptography import x509

from enarx.attestation import roots
from enarx.attestation.anchors import Anchor, TrustAnchors
from enarx.attestation.intel import abi
from enarx.attestation.model import (
    AttestationError,
    CollateralSet,
    MalformedEvidence,
    Revocation,
    TcbStatus,
    Tee,
    VerificationError,
)
from enarx.attestation.pki import Cert
from enarx.attestation.simulate.intel import simulate_sgx, simulate_tdx
from enarx.attestation.verifier import Verifier


def verify(sim, **kw):
    collateral = kw.pop("collateral", sim.collateral)
    at = kw.pop("at", sim.at)
    anchors = kw.pop("anchors", sim.anchors)
    return verify_quote(kw.pop("quote", sim.quote), collateral, at, anchors)


def fails(sim, reason, exc=VerificationError, **kw):
    with pytest.raises(exc) as info:
        verify(sim, **kw)
    assert info.value.reason == reason, str(info.value)
    return info.value


def flip(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0x01]) + data[offset + 1 :]


# --------------------------------------------------------------------------------------------------
# round trips


def test_sgx_fields_round_trip():
    fields = {
        "mrenclave": bytes(range(32)),
        "mrsigner": bytes(range(32, 64)),
        "report_data": bytes(range(64)),
        "isv_svn": 7,
        "isv_prodid": 42,
        "misc_select": 0x12,
        "qe_svn": 9,
        "pce_svn": 14,
        "pcesvn": 14,
        "tcb_components": (9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6),
        "fmspc": bytes.fromhex("00a067110000"),
        "ppid": bytes(range(16)),
    }
    sim = simulate_sgx(**fields)
    claims, checks, warnings = verify(sim)
    assert claims.tee == Tee.SGX
    assert claims.measurements == {"mrenclave": bytes(range(32)).hex()}
    assert claims.signer == {"mrsigner": bytes(range(32, 64)).hex()}
    assert claims.report_data == bytes(range(64))
    assert claims.svns == {"pce_svn": 14, "qe_svn": 9, "isv_svn": 7, "isv_prodid": 42}
    assert claims.fmspc.hex() == "00a067110000"
    assert claims.pck_tcb_components == fields["tcb_components"]
    assert claims.ppid == bytes(range(16))
    assert claims.misc_select == 0x12
    assert claims.tcb_status == TcbStatus.UP_TO_DATE
    assert claims.debug is False
    assert claims.collateral_expiry is not None and claims.collateral_expiry > sim.at
    assert all(c.passed for c in checks)
    assert any("extra trust anchor" in w for w in warnings)
    parsed = abi.parse_quote(sim.quote)
    assert parsed.header.version == 3 and parsed.length == len(sim.quote)


def test_sgx_debug_bit():
    claims, _, _ = verify(simulate_sgx(debug=True))
    assert claims.debug is True
    assert claims.attributes[0] & 0x02


def test_tdx_v4_fields_round_trip():
    rtmrs = tuple(bytes([i]) * 48 for i in range(1, 5))
    sim = simulate_tdx(
        mrtd=b"\x11" * 48, rtmrs=rtmrs, mrconfigid=b"\x22" * 48, mrowner=b"\x33" * 48, mrownerconfig=b"\x44" * 48,
        report_data=b"\x55" * 64, xfam=bytes.fromhex("e718060000000000"), tee_tcb_svn=bytes([4, 1, 3]) + bytes(13),
    )
    claims, _, _ = verify(sim)
    assert claims.tee == Tee.TDX
    assert claims.measurements["mrtd"] == "11" * 48
    assert [claims.measurements[f"rtmr{i}"] for i in range(4)] == [r.hex() for r in rtmrs]
    assert claims.measurements["mrconfigid"] == "22" * 48
    assert claims.measurements["mrowner"] == "33" * 48
    assert claims.measurements["mrownerconfig"] == "44" * 48
    assert "mrservicetd" not in claims.measurements
    assert claims.report_data == b"\x55" * 64
    assert claims.xfam.hex() == "e718060000000000"
    assert claims.tee_tcb_svn == bytes([4, 1, 3]) + bytes(13)
    assert claims.td_version == "1.0"
    assert claims.tcb_status == TcbStatus.UP_TO_DATE and not claims.debug
    assert abi.parse_quote(sim.quote).header.version == 4


def test_tdx_v5_td15_round_trip():
    sim = simulate_tdx(td15=True, mrservicetd=b"\x66" * 48, tee_tcb_svn2=bytes([5, 1, 3]) + bytes(13))
    claims, _, _ = verify(sim)
    q = abi.parse_quote(sim.quote)
    assert q.header.version == 5 and q.body_type == abi.BODY_TYPE_TD15
    assert claims.measurements["mrservicetd"] == "66" * 48
    assert claims.tee_tcb_svn2 == bytes([5, 1, 3]) + bytes(13)
    assert claims.td_version == "1.5"


def test_tdx_v5_td10_body():
    sim = simulate_tdx(quote_version=5, td15=False)
    assert abi.parse_quote(sim.quote).body_type == abi.BODY_TYPE_TD10
    assert verify(sim)[0].td_version == "1.0"


def test_tdx_debug_bit():
    claims, _, _ = verify(simulate_tdx(debug=True))
    assert claims.debug is True and claims.td_attributes[0] == 0x01


@pytest.mark.parametrize("combined", [False, True])
@pytest.mark.parametrize("make", [simulate_sgx, simulate_tdx])
def test_collateral_layouts(make, combined):
    claims, _, warnings = verify(make(combined=combined))
    assert claims.tcb_status == TcbStatus.UP_TO_DATE
    assert not any("CRL" in w for w in warnings)
    assert claims.provenance.revocation is Revocation.FULL


@pytest.mark.parametrize("make", [simulate_sgx, simulate_tdx])
def test_ppid_certification_data_takes_pck_from_collateral(make):
    sim = make(cert_data_type=1)
    assert abi.parse_quote(sim.quote).certification_data.ppid_info is not None
    claims, _, _ = verify(sim)
    assert claims.ppid
    bare = CollateralSet(json_documents=sim.collateral.json_documents,
                         certificates=[c for c in sim.collateral.certificates if c != sim.pck])
    fails(sim, "collateral", collateral=bare)


@pytest.mark.parametrize("status", ["OutOfDate", "ConfigurationNeeded", "ConfigurationAndSWHardeningNeeded",
                                    "SWHardeningNeeded", "OutOfDateConfigurationNeeded", "Revoked"])
def test_tcb_statuses(status):
    claims, _, _ = verify(simulate_sgx(tcb_status=status, advisory_ids=["INTEL-SA-00001"]))
    assert claims.tcb_status.value == status
    assert list(claims.advisory_ids) == ["INTEL-SA-00001"]


def test_first_matching_level_in_given_order():
    comps = [5, 5, 2, 2, 3, 1, 0, 3] + [0] * 8
    higher = [c + 1 for c in comps]
    levels = [
        {"sgx": higher, "pcesvn": 13, "status": "UpToDate"},
        {"sgx": comps, "pcesvn": 14, "status": "SWHardeningNeeded"},  # pcesvn too high
        {"sgx": comps, "pcesvn": 13, "status": "OutOfDate", "advisories": ["INTEL-SA-00002"]},
        {"sgx": [0] * 16, "pcesvn": 0, "status": "OutOfDate", "advisories": ["INTEL-SA-00003"]},
    ]
    claims, _, _ = verify(simulate_sgx(tcb_levels=levels))
    assert claims.tcb_status == TcbStatus.OUT_OF_DATE and list(claims.advisory_ids) == ["INTEL-SA-00002"]


def test_no_matching_level_is_not_supported():
    levels = [{"sgx": [99] * 16, "pcesvn": 13, "status": "UpToDate"}]
    claims, checks, _ = verify(simulate_sgx(tcb_levels=levels))
    assert claims.tcb_status == TcbStatus.NOT_SUPPORTED
    assert any(not c.passed and "tcb-no-level" in c.detail for c in checks)


def test_tdx_components_and_module_version():
    tee = bytes([3, 1, 2]) + bytes(13)
    base = [5, 5, 2, 2, 3, 1, 0, 3] + [0] * 8
    # TDX component 2 above TEE_TCB_SVN[2] → skipped; the module bytes (0, 1) are judged by the identity
    levels = [
        {"sgx": base, "pcesvn": 13, "tdx": [0, 0, 9] + [0] * 13, "status": "UpToDate"},
        {"sgx": base, "pcesvn": 13, "tdx": [99, 99, 2] + [0] * 13, "status": "SWHardeningNeeded"},
    ]
    claims, _, _ = verify(simulate_tdx(tee_tcb_svn=tee, tcb_levels=levels))
    assert claims.tcb_status == TcbStatus.SW_HARDENING_NEEDED


def test_tdx_module_out_of_date_converges():
    claims, _, _ = verify(simulate_tdx(tdx_module_status="OutOfDate"))
    assert claims.tcb_status == TcbStatus.OUT_OF_DATE
    claims, _, _ = verify(simulate_tdx(tdx_module_status="OutOfDate", tcb_status="ConfigurationNeeded"))
    assert claims.tcb_status == TcbStatus.OUT_OF_DATE_CONFIGURATION_NEEDED


def test_tdx_module_mrsigner_mismatch():
    fails(simulate_tdx(mrsignerseam=b"\x01" * 48), "collateral")


def test_qe_identity_status_converges():
    claims, _, _ = verify(simulate_sgx(qe_tcb_status="OutOfDate"))
    assert claims.tcb_status == TcbStatus.OUT_OF_DATE
    assert claims.qe_tcb_status is TcbStatus.OUT_OF_DATE


def test_qe_identity_mismatch():
    err = fails(simulate_sgx(qe_identity_mrsigner=b"\x02" * 32), "collateral")
    assert "MRSIGNER" in str(err)


def test_without_collateral_status_unknown_with_warnings():
    sim = simulate_tdx()
    claims, _, warnings = verify(sim, collateral=CollateralSet())
    assert claims.tcb_status == TcbStatus.UNKNOWN
    assert any("TCB info" in w for w in warnings) and any("CRL" in w for w in warnings)
    assert claims.provenance.revocation is Revocation.NOT_CHECKED and claims.provenance.test_anchor
    assert claims.provenance.tcb_info is False and claims.provenance.qe_identity is False


def test_out_dir_writes_files(tmp_path):
    sim = simulate_sgx(out_dir=tmp_path)
    assert (tmp_path / "quote.bin").read_bytes() == sim.quote
    for name in ("tcbinfo.json", "qe_identity.json", "tcb_signing_chain.pem", "root_ca.crl.der",
                 "pck_platform.crl.der", "trusted_root_ca.pem"):
        assert (tmp_path / name).is_file(), name
    doc = json.loads((tmp_path / "tcbinfo.json").read_bytes())
    assert doc["tcbInfo"]["id"] == "SGX" and len(bytes.fromhex(doc["signature"])) == 64
    assert set(sim.paths) == set(sim.files)


def test_unknown_field_is_an_error():
    with pytest.raises(TypeError):
        simulate_sgx(mrtd=b"")


# --------------------------------------------------------------------------------------------------
# negatives


def test_real_intel_root_refuses_simulated_evidence():
    sim = simulate_tdx()
    other = Cert.from_cryptography(simulate_sgx().root)  # another root with Intel's name, other key
    real_like = TrustAnchors((Anchor(other, frozenset({"sgx", "tdx"})),))
    fails(sim, "untrusted-root", anchors=real_like)
    fails(sim, "untrusted-root", anchors=TrustAnchors())
    err = fails(sim, "untrusted-root", anchors=roots.builtin_anchors())
    assert "not a trust anchor for tdx" in str(err)


@pytest.mark.parametrize("make", [simulate_sgx, simulate_tdx])
def test_flipped_byte_in_each_signed_region(make):
    sim = make()
    q = abi.parse_quote(sim.quote)
    body_end = len(q.signed_region)
    sig_start = body_end + 4
    att_key = sig_start + 64
    qe_report = att_key + 64 + (0 if q.header.version == 3 else 6)
    qe_sig = qe_report + 384
    qe_auth = qe_sig + 64 + 2
    offsets = {
        "header": 30,
        "body": body_end - 1,  # last byte of report_data
        "signature": sig_start + 5,
        "attestation key": att_key + 10,
        "qe report": qe_report,  # cpusvn[0]
        "qe report data": qe_report + 320,
        "qe signature": qe_sig + 3,
        "qe auth data": qe_auth,
    }
    for what, off in offsets.items():
        err = fails(sim, "signature", quote=flip(sim.quote, off))
        assert err.checks and not err.checks[-1].passed, what


def test_flipped_pck_chain_is_refused():
    sim = simulate_sgx()
    pem_at = sim.quote.index(b"-----BEGIN CERTIFICATE-----") + 200
    with pytest.raises(AttestationError):
        verify(sim, quote=flip(sim.quote, pem_at))


@pytest.mark.parametrize("combined", [False, True])
def test_revoked_pck(combined):
    err = fails(simulate_sgx(revoke_pck=True, combined=combined), "revoked")
    assert "revoked" in str(err)


def test_revoked_platform_ca():
    fails(simulate_tdx(revoke_platform_ca=True), "revoked")


def test_other_revoked_serials_do_not_matter():
    verify(simulate_sgx(revoked_serials=[12345, 67890]))


def test_tcb_info_of_another_platform_is_missing_tcb_info():
    sim = simulate_sgx(tcb_info_fmspc=bytes.fromhex("00606a000000"))
    claims, _, warnings = verify(sim)
    assert claims.tcb_status is TcbStatus.UNKNOWN and claims.provenance.tcb_info is False
    assert any("no SGX TCB info for FMSPC 00906ed50000 (supplied: SGX 00606a000000)" in w for w in warnings)
    verdict = Verifier(anchors=sim.anchors).verify(sim.quote, sim.collateral, at=sim.at)
    assert (verdict.status, verdict.reason) == ("rejected", "missing-collateral")


def test_swapped_collateral_between_platforms():
    sgx, tdx = simulate_sgx(), simulate_tdx()
    # TDX collateral for an SGX quote: no SGX TCB info, no QE identity, no CRL of this PKI → missing
    verdict = Verifier(anchors=sgx.anchors).verify(sgx.quote, tdx.collateral, at=sgx.at)
    assert (verdict.status, verdict.reason) == ("rejected", "missing-collateral")
    failed = {c.name for c in verdict.checks if not c.passed}
    assert failed == {"policy.tcb-status", "policy.revocation", "policy.collateral.qe-identity"}
    # same kind, other PKI: its TCB info verifies with a signer that chains to another root
    other = simulate_sgx(fmspc=bytes.fromhex("00906ed50000"))
    fails(sgx, "untrusted-root", collateral=other.collateral)


def test_forged_crl_naming_the_issuers_key_is_a_signature_failure():
    """A CRL with the PCK CA's name and key identifier, signed by another key, is a forgery, not skipped."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    sim = simulate_sgx()
    platform = sim.certs["platform"]
    forged = (x509.CertificateRevocationListBuilder().issuer_name(platform.subject)
              .last_update(sim.at - timedelta(hours=1)).next_update(sim.at + timedelta(days=1))
              .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(platform.public_key()), False)
              .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256()))
    cs = CollateralSet(certificates=sim.collateral.certificates, json_documents=sim.collateral.json_documents,
                       crls=[*sim.collateral.crls, forged])
    fails(sim, "signature", collateral=cs)


def test_tampered_tcb_info_and_qe_identity():
    sim = simulate_sgx()
    for name in ("tcbinfo.json", "qe_identity.json"):
        docs = [(n, raw.replace(b'"version":', b'"version": ', 1) if n == name else raw)
                for n, raw in sim.collateral.json_documents]
        cs = CollateralSet(certificates=sim.collateral.certificates, crls=sim.collateral.crls, json_documents=docs)
        fails(sim, "signature", collateral=cs)


def test_expired_and_not_yet_valid():
    sim = simulate_sgx(tcb_validity_days=10)
    err = fails(sim, "expired", at=sim.at + timedelta(days=11))
    assert "expired" in str(err)
    err = fails(sim, "not-yet-valid", at=sim.at - timedelta(days=2))
    assert "not valid before" in str(err)
    claims, _, _ = verify(sim, at=sim.at + timedelta(days=9))
    assert claims.collateral_expiry == sim.at + timedelta(days=10)


def test_expired_certificate():
    sim = simulate_tdx(cert_validity_days=5, include_tcb_info=False, include_qe_identity=False, include_crls=False)
    err = fails(sim, "expired", at=sim.at + timedelta(days=6))
    assert "certificate" in str(err)


def test_truncation_names_the_field():
    sim = simulate_tdx()
    for cut in (10, 48, 300, 700, 800, 1000, len(sim.quote) - 1):
        with pytest.raises(MalformedEvidence) as info:
            abi.parse_quote(sim.quote[:cut])
        assert "truncated" in str(info.value)
    # padding is tolerated
    assert abi.parse_quote(sim.quote + bytes(100)).length == len(sim.quote)


def test_report_data_binding_example():
    key_hash = hashlib.sha256(b"csr key").digest()
    claims, _, _ = verify(simulate_sgx(report_data=key_hash + bytes(32)))
    assert claims.report_data[:32] == key_hash


def test_looks_like_quote():
    assert abi.looks_like_quote(simulate_sgx().quote)
    assert abi.looks_like_quote(simulate_tdx().quote)
    assert not abi.looks_like_quote(b"\x00" * 100)
    assert not abi.looks_like_quote(b"")


def test_anchor_given_as_bytes():
    from cryptography.hazmat.primitives.serialization import Encoding

    sim = simulate_sgx()
    verify(sim, anchors=roots.builtin_anchors([sim.root.public_bytes(Encoding.DER)]))
    assert isinstance(sim.root, x509.Certificate)


@pytest.mark.parametrize("signer", ["pck", "platform", "root"])
def test_tcb_info_signed_by_other_intel_keys_is_refused(signer):
    """A PCK key lives in the platform: it must never be able to vouch for the platform's own TCB."""
    err = fails(simulate_sgx(tcb_info_signer=signer), "chain")
    assert "TCB signing" in str(err)
