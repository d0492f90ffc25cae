"""Each trust-deciding check a mutation once removed without any test noticing (issue 9), one test each; and
what a verdict carries onward (claims as JSON, collateral warnings), where a mutant also went unnoticed.

Every case is built so that *only* that check stands in the way: the evidence is otherwise genuine (the
simulator signs it with the right keys), so deleting the check turns the refusal into "trusted"."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from _corpus import CORPORA, HAVE_CORPUS, NO_CORPUS
from _verify import verify_quote

from enarx.attestation import roots
from enarx.attestation.model import CollateralSet, VerificationError
from enarx.attestation.simulate.intel import IntelTestPki, simulate_sgx, simulate_tdx
from enarx.attestation.simulate.snp import simulate_snp
from enarx.attestation.snp.abi import TcbVersion
from enarx.attestation.verifier import Verifier


def snp_refusal(sim) -> tuple[str, str]:
    verdict = Verifier(anchors=sim.trust_anchors()).verify(sim.report, sim.collateral)
    failed = [c for c in verdict.checks if not c.passed and c.name != "verify"]
    assert verdict.status == "failed" and failed, verdict.status
    return verdict.reason, failed[-1].name


def intel_refusal(sim, anchors=None, collateral=None) -> VerificationError:
    with pytest.raises(VerificationError) as info:
        verify_quote(sim.quote, sim.collateral if collateral is None else collateral, sim.at,
                     anchors or sim.anchors)
    return info.value


# --- SEV-SNP ---------------------------------------------------------------------------------------------


def test_snp_vcek_issued_for_another_chip():
    sim = simulate_snp(vcek_hwid=b"\x42" * 64)  # same key, another chip's hwID
    assert snp_refusal(sim) == ("collateral", "snp.hwid")


def test_snp_turin_vcek_hwid_is_the_first_8_bytes_of_chip_id():
    sim = simulate_snp(product="Turin", vcek_hwid=b"\x42" * 64)
    assert snp_refusal(sim) == ("collateral", "snp.hwid")


def test_snp_vcek_certifying_another_tcb():
    sim = simulate_snp(tcb=TcbVersion(4, 0, 24, 219), vcek_tcb=TcbVersion(4, 0, 24, 220))
    assert snp_refusal(sim) == ("collateral", "snp.tcb-match")


def test_snp_turin_vcek_fmc_is_compared():
    sim = simulate_snp(product="Turin", tcb=TcbVersion(1, 0, 3, 77, fmc=1), vcek_tcb=TcbVersion(1, 0, 3, 77, fmc=2))
    assert snp_refusal(sim) == ("collateral", "snp.tcb-match")


def test_snp_vcek_product_name_of_another_product():
    sim = simulate_snp(product="Milan", vcek_product_name="Genoa")
    assert snp_refusal(sim) == ("chain", "snp.product")


def test_snp_report_cpuid_of_another_product():
    sim = simulate_snp(product="Milan", cpuid=(0x19, 0x11, 0x01))  # Genoa's family/model under a Milan ARK
    assert snp_refusal(sim) == ("chain", "snp.product")


# --- Intel -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [simulate_sgx, simulate_tdx])
def test_qe_report_data_reserved_bytes_must_be_zero(make):
    err = intel_refusal(make(qe_report_data_tail=b"\x01" + bytes(31)))
    assert err.reason == "signature" and "32..64" in str(err)


@pytest.mark.parametrize("shape,fragment", [("ca-leaf", "the PCK is a CA"), ("direct", "2 certificates"),
                                            ("long", "4 certificates")])
def test_pck_chain_is_exactly_pck_ca_root_with_an_end_entity_pck(shape, fragment):
    err = intel_refusal(simulate_sgx(pck_chain=shape))
    assert err.reason == "chain" and err.checks[-1].name == "pck-chain" and fragment in str(err)


@pytest.mark.parametrize("make", [simulate_sgx, simulate_tdx])
def test_collateral_must_chain_to_the_pck_root_even_when_another_anchor_is_trusted(make):
    """Two test roots configured: TCB info and QE identity signed under the other one are refused."""
    other = IntelTestPki.create(datetime(2020, 1, 1).astimezone(), datetime(2045, 1, 1).astimezone())
    sim = make(collateral_pki=other)
    both = roots.builtin_anchors([sim.root, other.root])
    err = intel_refusal(sim, anchors=both)
    assert err.reason == "untrusted-root" and err.checks[-1].name == "tcb-info-chain"
    assert "not to the root of the PCK certificate" in str(err)


def test_quote_pce_id_must_match_the_pck():
    sim = simulate_sgx(cert_data_type=1, quote_pce_id=b"\x01\x00")
    err = intel_refusal(sim)
    assert err.reason == "collateral" and err.checks[-1].name == "pck-identity"


def test_tdx_seam_attributes_must_match_the_module_identity():
    err = intel_refusal(simulate_tdx(seam_attributes=b"\x01" + bytes(7)))
    assert err.reason == "collateral" and "SEAM attributes" in str(err)


@pytest.mark.corpus
@pytest.mark.skipif(not HAVE_CORPUS, reason=NO_CORPUS)
def test_test_pki_tcb_info_is_refused_for_a_genuine_quote():
    """A genuine Intel quote (real root) and a test root also configured: TCB info re-signed by the test PKI
    for that very platform must not decide its status."""
    import json

    from enarx.attestation.collateral import load_collateral
    from enarx.attestation.intel.collateral import parse_document
    from enarx.attestation.simulate.intel import _pcs_document, _raw_sign
    from enarx.attestation.verifier import parse_time

    raw = (CORPORA / "tdx/phala-v4/collateral.json").read_bytes()
    genuine_tcb = parse_document(raw, "collateral.json").tcb_infos[0].signed.raw
    test = IntelTestPki.create(datetime(2020, 1, 1).astimezone(), datetime(2045, 1, 1).astimezone())
    forged = _pcs_document("tcbInfo", genuine_tcb, _raw_sign(test.tcb_key, genuine_tcb))
    doc = json.loads(raw)
    keep = {k: v for k, v in doc.items() if not k.startswith("tcb_info")}
    collateral = load_collateral([CORPORA / "intel-ca/intel_sgx_root_ca.der"])
    collateral.json_documents += [("forged-tcbinfo.json", forged), ("rest.json", json.dumps(keep).encode())]
    from cryptography.hazmat.primitives.serialization import Encoding

    collateral.certificates += [test.tcb.public_bytes(Encoding.DER), test.root.public_bytes(Encoding.DER)]
    anchors = roots.builtin_anchors([test.root])
    with pytest.raises(VerificationError) as info:
        verify_quote((CORPORA / "tdx/phala-v4/quote.bin").read_bytes(), collateral,
                     parse_time("2025-06-20T10:32:27Z"), anchors)
    assert info.value.reason == "untrusted-root" and info.value.checks[-1].name == "tcb-info-chain"


def test_empty_collateral_set_is_not_an_error():
    sim = simulate_tdx()
    claims, _, _ = verify_quote(sim.quote, CollateralSet(), sim.at, sim.anchors)
    assert claims.provenance.tcb_info is False


def test_the_format_a_caller_expects_is_enforced():
    """The Steward pins the format by the extension OID: a TDX quote verified as SGX evidence is refused."""
    sim = simulate_tdx()
    verdict = Verifier(anchors=sim.anchors).verify(sim.quote, sim.collateral, at=sim.at, format="sgx")
    assert (verdict.status, verdict.reason) == ("failed", "format")
    assert "tdx evidence where sgx was expected" in verdict.checks[-1].detail


def test_tcb_info_pce_id_must_match_the_pck():
    err = intel_refusal(simulate_sgx(tcb_info_pce_id=b"\x01\x00"))
    assert err.reason == "collateral" and err.checks[-1].name == "tcb-info-pce-id"


@pytest.mark.parametrize("make", [simulate_sgx, simulate_tdx])
def test_tcb_info_of_an_unknown_tcb_type_is_refused(make):
    """Intel defines tcbType 0 only (levels compared component by component): a correctly signed TCB info of
    another type must not yield a TCB status (survivor of the attestation-core mutation run)."""
    err = intel_refusal(make(tcb_type=1))
    assert err.reason == "collateral" and err.checks[-1].name == "tcb-info" and "unsupported tcbType 1" in str(err)


def test_a_certificate_revoked_at_the_verification_instant_is_revoked():
    """The CRL lists the PCK as revoked at the CRL's own thisUpdate; verifying at exactly that instant (``--at``)
    is after the revocation took effect, not before it."""
    sim = simulate_sgx(revoke_pck=True)
    crl_issued = sim.at - timedelta(hours=1)  # the simulator's thisUpdate and revocationDate
    with pytest.raises(VerificationError) as info:
        verify_quote(sim.quote, sim.collateral, crl_issued, sim.anchors)
    assert info.value.reason == "revoked" and "revoked by the CRL" in str(info.value)


def test_issuers_are_matched_by_key_before_any_signature_is_tried():
    """The quote's chain stops below the root, and two roots named "Intel SGX Root CA" are anchors (the real one
    and the simulator's): the key identifier picks the right one, so no signature check fails on the way."""
    from enarx.attestation import crypto

    sim = simulate_sgx(pck_chain="no-root")
    root = sim.certs["root"]
    no_root = CollateralSet(certificates=[c for c in sim.collateral.certificates if c != root],
                            crls=sim.collateral.crls, json_documents=sim.collateral.json_documents)
    assert [a.name for a in sim.anchors.for_format("sgx")] == ["Intel SGX Root CA"] * 2  # the vendor's first
    with crypto.recording() as ops:
        Verifier(anchors=sim.anchors, memo=False).genuine(sim.quote, no_root, at=sim.at)
    assert len(ops) == 9 and all(crypto.replay(op.public_key, op.scheme, op.data, op.signature) for op in ops)


def test_a_vendor_name_on_another_kind_of_key_does_not_bind_a_test_anchor():
    from enarx.attestation.anchors import AnchorError, bind_test_anchor
    from enarx.attestation.pki import Cert
    from enarx.attestation.simulate.pki import ECDSA_SHA384, TestCA
    from enarx.attestation.simulate.snp import _amd_name

    ec_ark = Cert.from_der(TestCA.root(_amd_name("ARK-Milan"), algorithm=ECDSA_SHA384).certificate)
    with pytest.raises(AnchorError, match="cannot tell which evidence format"):
        bind_test_anchor(ec_ark)
    no_amd = Cert.from_der(TestCA.root([("CN", "ARK-Milan")], algorithm="rsa-pss-sha384").certificate)
    with pytest.raises(AnchorError):
        bind_test_anchor(no_amd)
    assert bind_test_anchor(ec_ark, {"snp"}).formats == {"snp"}  # naming the format is always possible


# --- AWS Nitro -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pcrs", [{"0": bytes(48)}, {0: "00" * 48}, [bytes(48)]],
                         ids=["text-index", "text-value", "list"])
def test_nitro_pcrs_must_map_integers_to_byte_strings(pcrs):
    """A document signed under a trusted root whose PCRs are not {int: bytes} is malformed: a PCR0 under a text
    key would otherwise be invisible to a policy on ``pcr0``, and a text value would reach the policy as such."""
    from enarx.attestation.simulate.nitro import simulate_nitro

    sim = simulate_nitro(pcrs=pcrs)
    verdict = Verifier(anchors=roots.builtin_anchors([sim.root])).verify(sim.document, at=sim.at)
    assert (verdict.status, verdict.reason) == ("failed", "parse")
    assert "pcrs must map integers to byte strings" in verdict.checks[-1].detail



# --- NVIDIA ------------------------------------------------------------------------------------------------


def _spdm_transcript(block: bytes) -> bytes:
    """GET_MEASUREMENTS request and a MEASUREMENTS response holding one block (signature bytes zero)."""
    request = bytes([0x11, 0xE0, 0x01, 0xFF]) + b"\x5a" * 32 + b"\x00"
    response = (bytes([0x11, 0x60, 0x00, 0x00, 1]) + len(block).to_bytes(3, "little") + block + b"\xa5" * 32
                + (0).to_bytes(2, "little") + bytes(96))
    return request + response


def test_an_spdm_measurement_block_longer_than_its_record_is_malformed():
    """A block whose size (and value size) say one byte more than the record holds must not be read as a
    shorter measurement: the digest shown and appraised would not be the one the device announced."""
    from enarx.attestation import nvidia
    from enarx.attestation.model import MalformedEvidence

    value = bytes(range(48))

    def block(announced: int) -> bytes:
        return bytes([1, 1]) + (3 + announced).to_bytes(2, "little") + b"\x01" + announced.to_bytes(2, "little") + value

    (parsed,) = nvidia.parse(_spdm_transcript(block(48))).blocks
    assert parsed.value == value
    with pytest.raises(MalformedEvidence, match="block 1 has a bad size"):
        nvidia.parse(_spdm_transcript(block(49)))

# --- what a verdict carries onward ----------------------------------------------------------------------


def _simulated_claims():
    from enarx.attestation.simulate.nitro import simulate_nitro

    nitro = simulate_nitro()
    yield Verifier(anchors=roots.builtin_anchors([nitro.root])).verify(nitro.document, at=nitro.at)
    for sim in (simulate_sgx(), simulate_tdx()):
        yield Verifier(anchors=sim.anchors).verify(sim.quote, sim.collateral, at=sim.at)
    snp = simulate_snp()
    yield Verifier(anchors=snp.trust_anchors()).verify(snp.report, snp.collateral)


def test_claims_keep_every_fact_through_their_json_form():
    """The Steward's token and a KBS or Drawbridge appraisal read claims back from JSON
    (``claims_from_json``): every fact a policy reads, and the provenance, must come back for each TEE."""
    from enarx.attestation.claims import claims_from_json

    seen = set()
    for verdict in _simulated_claims():
        assert verdict.status == "trusted", verdict.reason
        doc = verdict.claims.to_json()
        back = claims_from_json(doc)
        assert type(back) is type(verdict.claims)
        assert {k: v for k, v in back.to_json().items() if k != "platform"} == \
            {k: v for k, v in doc.items() if k != "platform"}
        if back.tee.value == "sev-snp":  # the guest's settings that SEV-SNP rules read besides the facts
            assert [getattr(back, a) for a in ("vmpl", "policy", "product", "signing_key", "abi")] == \
                [getattr(verdict.claims, a) for a in ("vmpl", "policy", "product", "signing_key", "abi")]
        seen.add(back.tee.value)
    assert seen == {"nitro", "sgx", "tdx", "sev-snp"}


def test_warnings_of_the_supplied_collateral_reach_the_verdict(tmp_path):
    """A file of a collateral directory that is not collateral is skipped, and the verdict says so: a CRL that
    could not be read must not vanish silently into a "missing collateral" refusal."""
    from enarx.attestation.collateral import load_collateral

    sim = simulate_sgx(tmp_path / "sim")
    (tmp_path / "sim" / "pck.crl").write_bytes(b"not a CRL")
    verdict = Verifier(anchors=sim.anchors).verify(sim.quote, load_collateral([tmp_path / "sim"]), at=sim.at)
    assert verdict.status == "trusted", verdict.reason
    assert any("skipped" in w and "pck.crl" in w for w in verdict.warnings), verdict.warnings
