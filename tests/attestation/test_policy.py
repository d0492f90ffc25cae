"""Appraisal rules: each one proven to reject, with expected vs actual; TOML loading; dated allowances;
rules on facts the evidence lacks fail; any_of alternatives; per-TEE settings."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from enarx.attestation.claims import Provenance, SgxClaims, SnpClaims
from enarx.attestation.model import Revocation, TcbStatus
from enarx.attestation.policy import AllOf, AnyOf, DigestAllowed, Policy, PolicyError, TeeIn, rejection_reason
from enarx.attestation.snp.abi import POLICY_MIGRATE_MA, POLICY_RESERVED_1, POLICY_SMT, TcbVersion

AT = datetime(2026, 1, 15, tzinfo=UTC)
M = "ab" * 48
FULL = Provenance("CN=ARK-Milan", "00", False, Revocation.FULL)


def snp_claims(**over) -> SnpClaims:
    base = {"report_data": bytes(64), "debug": False, "provenance": FULL, "tcb_status": TcbStatus.UP_TO_DATE,
            "measurement": bytes.fromhex(M), "host_data": bytes(32), "id_key_digest": b"\x11" * 48,
            "author_key_digest": b"\x22" * 48, "guest_svn": 2, "vmpl": 0, "policy": POLICY_RESERVED_1 | POLICY_SMT,
            "abi": (1, 51), "product": "Milan", "reported_tcb": TcbVersion(4, 0, 24, 219)}
    base.update(over)
    return SnpClaims(**base)


def sgx_claims(**over) -> SgxClaims:
    base = {"report_data": bytes(64), "debug": False, "tcb_status": TcbStatus.UP_TO_DATE, "mrenclave": b"\x33" * 32,
            "mrsigner": b"\x44" * 32, "isv_svn": 3,
            "provenance": dataclasses.replace(FULL, tcb_info=True, qe_identity=True)}
    base.update(over)
    return SgxClaims(**base)


def failed(policy: Policy, claims) -> dict[str, object]:
    return {c.name: c for c in policy.appraise(claims, AT) if not c.passed}


def test_default_policy_accepts_clean_claims():
    assert failed(Policy.default(), snp_claims()) == {}
    assert failed(Policy.default(), sgx_claims()) == {}


def test_debug_is_refused_unless_allowed():
    bad = failed(Policy.default(), snp_claims(debug=True))
    assert bad["policy.debug"].expected == "false" and bad["policy.debug"].actual == "true"
    assert rejection_reason(list(bad.values())) == "debug"
    assert failed(Policy.from_toml("allow_debug = true"), snp_claims(debug=True)) == {}
    dated = Policy.from_toml("allow_debug = { until = 2026-01-01 }")
    assert "ended 2026-01-01" in failed(dated, snp_claims(debug=True))["policy.debug"].detail


@pytest.mark.parametrize("status,reason", [
    (TcbStatus.OUT_OF_DATE, "tcb-outofdate"),
    (TcbStatus.CONFIGURATION_AND_SW_HARDENING_NEEDED, "tcb-needs-config"),
    (TcbStatus.CONFIGURATION_NEEDED, "tcb-needs-config"),
    (TcbStatus.SW_HARDENING_NEEDED, "tcb-sw-hardening"),
    (TcbStatus.NOT_SUPPORTED, "tcb-no-level"),
    (TcbStatus.REVOKED, "tcb-revoked"),
])
def test_tcb_status_rule(status, reason):
    bad = failed(Policy.default(), snp_claims(tcb_status=status))
    assert bad["policy.tcb-status"].actual == status.value
    assert bad["policy.tcb-status"].expected == "UpToDate | NotEvaluated"  # what the policy would have accepted
    assert rejection_reason(list(bad.values())) == reason


def test_unknown_tcb_is_missing_collateral_unless_relaxed():
    claims = sgx_claims(tcb_status=TcbStatus.UNKNOWN,
                        provenance=dataclasses.replace(sgx_claims().provenance, tcb_info=False))
    bad = failed(Policy.default(), claims)
    assert rejection_reason(list(bad.values())) == "missing-collateral"
    assert "TCB info" in bad["policy.tcb-status"].detail
    assert failed(Policy.from_toml('allow_missing_collateral = ["tcb_info"]'), claims) == {}
    assert failed(Policy.from_toml("require_tcb_info = false"), claims) == {}  # the old key, still honoured


def test_not_evaluated_is_accepted_by_default_and_stated():
    claims = snp_claims(tcb_status=TcbStatus.NOT_EVALUATED)
    checks = {c.name: c for c in Policy.default().appraise(claims, AT)}
    assert checks["policy.tcb-status"].passed and checks["policy.tcb-status"].actual == "NotEvaluated"
    strict = failed(Policy.from_toml('tcb_statuses = ["UpToDate"]'), claims)
    assert rejection_reason(list(strict.values())) == "tcb-not-evaluated"
    assert "[snp.min_tcb.Milan]" in strict["policy.tcb-status"].detail


def test_min_tcb_evaluates_the_snp_status_per_product():
    policy = Policy.from_toml("[snp.min_tcb.Milan]\nbootloader = 4\ntee = 0\nsnp = 24\nmicrocode = 220\n"
                              "[snp.min_tcb.Turin]\nfmc = 1\nbootloader = 1\ntee = 0\nsnp = 1\nmicrocode = 1\n")
    raw = snp_claims(tcb_status=TcbStatus.NOT_EVALUATED)
    assert policy.evaluate_tcb(raw).tcb_status is TcbStatus.OUT_OF_DATE  # microcode 219 < 220
    newer = dataclasses.replace(raw, reported_tcb=TcbVersion(4, 0, 24, 220))
    assert policy.evaluate_tcb(newer).tcb_status is TcbStatus.UP_TO_DATE
    genoa = dataclasses.replace(raw, product="Genoa")
    assert policy.evaluate_tcb(genoa).tcb_status is TcbStatus.NOT_EVALUATED  # no reference for Genoa
    turin = dataclasses.replace(raw, product="Turin", reported_tcb=TcbVersion(1, 0, 1, 1, fmc=0))
    assert policy.evaluate_tcb(turin).tcb_status is TcbStatus.OUT_OF_DATE  # Turin's FMC counts
    with pytest.raises(PolicyError, match="fmc"):
        Policy.from_toml("[snp.min_tcb.Turin]\nbootloader = 1\ntee = 0\nsnp = 1\nmicrocode = 1\n")
    with pytest.raises(PolicyError, match="fmc"):
        Policy.from_toml("[snp.min_tcb.Milan]\nfmc = 1\nbootloader = 1\ntee = 0\nsnp = 1\nmicrocode = 1\n")


def test_dated_status_and_advisory_allowances():
    text = """
    tcb_statuses = ["UpToDate", { status = "SWHardeningNeeded", until = 2026-02-01 }]
    advisories = [{ id = "INTEL-SA-00615", until = 2026-02-01 }, "INTEL-SA-00289"]
    """
    policy = Policy.from_toml(text)
    claims = snp_claims(tcb_status=TcbStatus.SW_HARDENING_NEEDED, advisory_ids=("INTEL-SA-00615", "INTEL-SA-00289"))
    assert [c for c in policy.appraise(claims, AT) if not c.passed] == []
    later = datetime(2026, 2, 2, tzinfo=UTC)
    bad = {c.name: c for c in policy.appraise(claims, later) if not c.passed}
    assert "expired on 2026-02-01" in bad["policy.tcb-status"].detail
    assert "INTEL-SA-00615" in bad["policy.advisories"].detail
    bad = failed(Policy.from_toml('tcb_statuses = ["SWHardeningNeeded"]'), claims)
    assert set(bad) == {"policy.advisories"}
    assert rejection_reason(list(bad.values())) == "tcb-advisory"


@pytest.mark.parametrize("name", ["measurement", "host_data", "id_key_digest", "author_key_digest"])
def test_digest_allow_and_deny(name):
    claims = snp_claims()
    actual = claims.fact(name)
    other = "cd" * (len(actual) // 2)
    allow = Policy.from_toml(f'[measurements.{name}]\nallow = ["{other}"]')
    bad = failed(allow, claims)
    assert bad[f"policy.{name}.allow"].actual == actual and other in bad[f"policy.{name}.allow"].expected
    deny = Policy.from_toml(f'[signers.{name}]\ndeny = ["{actual.upper()}"]')
    assert f"policy.{name}.deny" in failed(deny, claims)
    ok = Policy.from_toml(f'[measurements.{name}]\nallow = ["{actual}", "{other}"]')
    assert failed(ok, claims) == {}


def test_rules_on_absent_facts_fail():
    """Finding 4: an SGX allow-list must not accept an SNP image; a rule never passes for a missing fact."""
    policy = Policy.from_toml('[measurements.mrenclave]\nallow = ["' + "00" * 32 + '"]\n[min_svn]\nisv_svn = 3')
    bad = failed(policy, snp_claims())
    assert "sev-snp evidence has no mrenclave" in bad["policy.mrenclave"].detail
    assert "sev-snp evidence has no isv_svn" in bad["policy.min_svn.isv_svn"].detail
    # author_key_digest is absent when AUTHOR_KEY_EN is clear
    claims = snp_claims(author_key_digest=None)
    assert "policy.author_key_digest" in failed(Policy.from_toml('[signers.author_key_digest]\ndeny = ["aa"]'), claims)


@pytest.mark.parametrize("text,needle", [
    ('[measurements.mrenclav]\nallow = ["aa"]', "mrenclav"),
    ("[min_svn]\nisv_sn = 1", "isv_sn"),
    ('[measurements.isv_svn]\nallow = ["aa"]', "a number"),
    ('tees = ["sev-snp"]\n[measurements.mrenclave]\nallow = ["aa"]', "would refuse everything"),
])
def test_unknown_or_impossible_facts_do_not_load(text, needle):
    with pytest.raises(PolicyError, match=needle):
        Policy.from_toml(text)


def test_any_of_accepts_one_alternative_per_tee():
    snp, sgx = snp_claims(), sgx_claims()
    text = f"""
    [[any_of]]
    tees = ["sev-snp"]
    measurements.measurement.allow = ["{M}"]
    [[any_of]]
    tees = ["sgx"]
    measurements.mrenclave.allow = ["{"33" * 32}"]
    """
    policy = Policy.from_toml(text)
    assert failed(policy, snp) == {} and failed(policy, sgx) == {}
    other = dataclasses.replace(sgx, mrenclave=b"\x55" * 32)
    bad = failed(policy, other)
    assert "no alternative holds" in bad["policy.any_of"].detail
    assert "policy.any_of[1].mrenclave.allow" in bad and "policy.any_of[0].tee" in bad
    # the same object tree built in code
    tree = AnyOf((AllOf((TeeIn(("sgx",)), DigestAllowed("mrenclave", ("33" * 32,)))),))
    assert not [c for c in tree.evaluate(sgx, AT) if not c.passed]
    assert [c for c in tree.evaluate(snp, AT) if not c.passed]


def test_snp_guest_policy_defaults_and_relaxations():
    claims = snp_claims(vmpl=1, policy=POLICY_RESERVED_1 | POLICY_SMT | POLICY_MIGRATE_MA)
    bad = failed(Policy.default(), claims)
    assert set(bad) == {"policy.snp.vmpl", "policy.snp.migration_agent"}  # VMPL 0 and no MA by default
    relaxed = "[snp]\nmax_vmpl = 1\nallow_migration_agent = true\n"
    assert failed(Policy.from_toml(relaxed), claims) == {}
    assert "policy.snp.smt" in failed(Policy.from_toml(relaxed + "allow_smt = false\n"), claims)
    abi = failed(Policy.from_toml(relaxed + 'min_abi = "1.55"\n'), claims)
    assert abi["policy.snp.min_abi"].actual == "1.51"
    assert "policy.snp.single_socket" in failed(Policy.from_toml(relaxed + "require_single_socket = true\n"), claims)
    # SEV-SNP settings are conditions on SEV-SNP evidence only
    assert failed(Policy.from_toml("[snp]\nmax_vmpl = 0"), sgx_claims()) == {}


@pytest.mark.parametrize("revocation,default_ok", [(Revocation.FULL, True), (Revocation.PARTIAL, False),
                                                   (Revocation.NOT_CHECKED, False), (Revocation.NOT_AVAILABLE, True)])
def test_revocation_rule(revocation, default_ok):
    claims = snp_claims(provenance=dataclasses.replace(FULL, revocation=revocation, unchecked=("SEV-Milan",)))
    bad = failed(Policy.default(), claims)
    assert ("policy.revocation" not in bad) == default_ok
    if not default_ok:
        assert rejection_reason(list(bad.values())) == "missing-collateral" and "SEV-Milan" in \
            bad["policy.revocation"].detail
        assert failed(Policy.from_toml('allow_missing_collateral = ["crl"]'), claims) == {}
        dated = Policy.from_toml('allow_missing_collateral = [{ item = "crl", until = 2025-12-31 }]')
        assert "policy.revocation" in failed(dated, claims)
    strict = failed(Policy.from_toml("require_revocation_check = true"), claims)
    assert ("policy.revocation" in strict) == (revocation is not Revocation.FULL)


def test_qe_identity_required_for_intel():
    claims = sgx_claims(provenance=dataclasses.replace(FULL, tcb_info=True, qe_identity=False))
    bad = failed(Policy.default(), claims)
    assert set(bad) == {"policy.collateral.qe-identity"} and "QE identity" in bad["policy.collateral.qe-identity"].detail
    assert failed(Policy.from_toml('[sgx]\nallow_missing_collateral = ["qe_identity"]'), claims) == {}
    with pytest.raises(PolicyError, match="sev-snp evidence has no qe_identity"):
        Policy.from_toml('[snp]\nallow_missing_collateral = ["qe_identity"]')


def test_tee_allow_list():
    assert "policy.tee" in failed(Policy.from_toml('tees = ["tdx"]'), snp_claims())
    with pytest.raises(PolicyError, match="kvm"):
        Policy.from_toml('tees = ["kvm"]')


def test_rejection_lists_every_failed_rule():
    policy = Policy.from_toml('[measurements.measurement]\nallow = ["' + "00" * 48 + '"]\n[min_svn]\nsnp = 99')
    bad = failed(policy, snp_claims(debug=True, tcb_status=TcbStatus.OUT_OF_DATE))
    assert {"policy.debug", "policy.tcb-status", "policy.measurement.allow", "policy.min_svn.snp"} <= set(bad)
    assert all(c.expected is not None and c.actual is not None for c in bad.values())


@pytest.mark.parametrize("text", [
    "allow_debug = 1",
    "bogus = true",
    'tcb_statuses = ["Fine"]',
    'tcb_statuses = ["Unknown"]',
    '[measurements.measurement]\nallow = ["xyz"]',
    '[measurements.measurement]\nallow = ["aa"]\ndeny = ["aa"]',
    "[snp]\nmax_vmpl = 9",
    '[snp]\nmin_abi = "one"',
    "[snp]\nbogus = 1",
    "[nitro]\nmax_vmpl = 0",
    "[min_svn]\nsnp = -1",
    'advisories = [{ id = "X", until = "soon" }]',
    'allow_missing_collateral = ["vibes"]',
    "[[any_of]]",
    "this is not toml",
])
def test_bad_policies_are_refused(text):
    with pytest.raises(PolicyError):
        Policy.from_toml(text)


def test_policy_file(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text("allow_debug = true\n")
    assert failed(Policy.from_file(path), snp_claims(debug=True)) == {}
    with pytest.raises(PolicyError):
        Policy.from_file(tmp_path / "missing.toml")


def test_every_example_in_the_policy_document_loads():
    """docs/policy.md is the reference: each of its TOML examples must be a valid policy, and the default one
    spelled out there must behave as the default."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "policy.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", text, re.DOTALL)
    assert len(blocks) >= 5
    policies = [Policy.from_toml(b.replace("<48-byte hex launch digest>", "ab" * 48)
                                 .replace("<48-byte hex>", "ab" * 48).replace("<32-byte hex>", "cd" * 32), "doc")
                for b in blocks]
    spelled_out = policies[0]
    for claims in (snp_claims(), snp_claims(vmpl=1), snp_claims(debug=True), sgx_claims(),
                   snp_claims(tcb_status=TcbStatus.NOT_EVALUATED)):
        assert failed(spelled_out, claims).keys() == failed(Policy.default(), claims).keys()
