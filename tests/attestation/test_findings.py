"""Regression tests for the holes issue 8 found in the attestation core (findings 1–4), each written to
fail on the code that had the hole."""

from __future__ import annotations

from click.testing import CliRunner

from enarx.attestation import roots
from enarx.attestation.anchors import bind_test_anchor
from enarx.attestation.pki import Cert
from enarx.attestation.policy import Policy, PolicyError
from enarx.attestation.simulate.intel import simulate_sgx
from enarx.attestation.simulate.nitro import simulate_nitro
from enarx.attestation.simulate.snp import SnpTestPki, _amd_name, simulate_snp
from enarx.attestation.verifier import Verifier
from enarx.cli.attest import attest

# --- finding 1: a quote with no collateral is trusted ---------------------------------------------------


def test_sgx_quote_with_only_a_trust_anchor_is_rejected_naming_each_missing_item(tmp_path):
    sim = simulate_sgx(tmp_path / "sim")
    (tmp_path / "quote.bin").write_bytes(sim.quote)
    result = CliRunner().invoke(attest, ["verify", str(tmp_path / "quote.bin"), "--trust-anchor",
                                         str(sim.paths["trusted_root_ca.pem"])])
    assert result.exit_code == 2, result.output
    out = result.output
    assert "TCB info" in out and "QE identity" in out and "CRL" in out, out
    assert "rejected (missing-collateral)" in out


# --- finding 2: SEV-SNP TCB status, VMPL and the ARK CRL ------------------------------------------------


def test_snp_tcb_status_is_not_a_constant():
    sim = simulate_snp()
    verdict = Verifier(anchors=sim.trust_anchors()).verify(sim.report, sim.collateral)
    assert verdict.claims.tcb_status.value == "NotEvaluated"
    assert any("not evaluated" in w.lower() for w in verdict.warnings)
    # with a minimum TCB for the product the status is evaluated against it
    higher = Policy.from_toml("[snp.min_tcb.Milan]\nbootloader = 9\ntee = 0\nsnp = 24\nmicrocode = 219\n")
    verdict = Verifier(anchors=sim.trust_anchors(), policy=higher).verify(sim.report, sim.collateral)
    assert (verdict.status, verdict.reason) == ("rejected", "tcb-outofdate")
    lower = Policy.from_toml("[snp.min_tcb.Milan]\nbootloader = 4\ntee = 0\nsnp = 24\nmicrocode = 219\n")
    verdict = Verifier(anchors=sim.trust_anchors(), policy=lower).verify(sim.report, sim.collateral)
    assert verdict.status == "trusted" and verdict.claims.tcb_status.value == "UpToDate"


def test_snp_vmpl_3_is_rejected_by_default():
    sim = simulate_snp(vmpl=3)
    verdict = Verifier(anchors=sim.trust_anchors()).verify(sim.report, sim.collateral)
    assert verdict.status == "rejected"
    assert [c.name for c in verdict.checks if not c.passed] == ["policy.snp.vmpl"]


def test_snp_report_without_its_ark_crl_is_rejected_by_default():
    sim = simulate_snp(crl=False)
    verdict = Verifier(anchors=sim.trust_anchors()).verify(sim.report, sim.collateral)
    assert (verdict.status, verdict.reason) == ("rejected", "missing-collateral")
    assert any(not c.passed and "CRL" in c.detail for c in verdict.checks)


# --- finding 3: anchors are tied to a vendor ------------------------------------------------------------


def test_nitro_document_under_an_amd_chain_is_refused():
    """The document chains to an ARK-Milan test root, which is an anchor for SEV-SNP only."""
    pki = SnpTestPki.create("Milan", key_size=2048, fresh_keys=True)
    sim = simulate_nitro(root_key=pki.ark_key, root_name=_amd_name("ARK-Milan"), root_der=pki.ark)
    anchors = roots.builtin_anchors([Cert.from_der(pki.ark)])
    verdict = Verifier(anchors=anchors).verify(sim.document, at=sim.at)
    assert (verdict.status, verdict.reason) == ("failed", "untrusted-root"), verdict.checks[-1]
    detail = " ".join(c.detail for c in verdict.checks if not c.passed)
    assert "not an anchor for nitro" in detail and "ARK-Milan" in detail
    # the same document is trusted only when that root is explicitly bound to Nitro
    bound = roots.builtin_anchors([bind_test_anchor(Cert.from_der(pki.ark), {"nitro"})])
    assert Verifier(anchors=bound).verify(sim.document, at=sim.at).status == "trusted"


def test_snp_report_is_refused_by_a_test_anchor_bound_to_another_format():
    sim = simulate_snp()
    other = roots.builtin_anchors([bind_test_anchor(Cert.from_der(sim.pki.ark), {"sgx", "tdx"})])
    verdict = Verifier(anchors=other).verify(sim.report, sim.collateral)
    assert (verdict.status, verdict.reason) == ("failed", "untrusted-root")
    assert Verifier(anchors=sim.trust_anchors()).verify(sim.report, sim.collateral).status == "trusted"


# --- finding 4: rules whose fact is missing ---------------------------------------------------------------


def test_sgx_allow_list_does_not_accept_an_snp_image():
    sim = simulate_snp()
    policy = Policy.from_toml('[measurements.mrenclave]\nallow = ["' + "ab" * 32 + '"]\n')
    verdict = Verifier(anchors=sim.trust_anchors(), policy=policy).verify(sim.report, sim.collateral)
    assert verdict.status == "rejected"
    failed = {c.name: c for c in verdict.checks if not c.passed}
    assert "mrenclave" in " ".join(failed)


def test_a_typo_in_a_claim_name_is_a_policy_error():
    try:
        Policy.from_toml('[measurements.mesurement]\nallow = ["' + "ab" * 48 + '"]\n')
    except PolicyError as exc:
        assert "mesurement" in str(exc)
    else:
        raise AssertionError("a misspelt claim name must not load")


def test_require_revocation_check_applies_to_nitro():
    sim = simulate_nitro()
    anchors = roots.builtin_anchors([sim.root])
    verdict = Verifier(anchors=anchors).verify(sim.document, at=sim.at)
    assert verdict.status == "trusted", [c for c in verdict.checks if not c.passed]
    assert verdict.claims.provenance.revocation.value == "not-available"
    assert any("revocation not available" in w for w in verdict.warnings)
    strict = Policy.from_toml("require_revocation_check = true")
    verdict = Verifier(anchors=anchors, policy=strict).verify(sim.document, at=sim.at)
    assert (verdict.status, verdict.reason) == ("rejected", "revocation-unavailable")
    assert [c.name for c in verdict.checks if not c.passed] == ["policy.revocation"]
    # …and relaxing it for Nitro alone is one named entry
    relaxed = Policy.from_toml("require_revocation_check = true\n[nitro]\nrequire_revocation_check = false\n")
    assert Verifier(anchors=anchors, policy=relaxed).verify(sim.document, at=sim.at).status == "trusted"


