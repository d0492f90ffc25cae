"""Appraisal rules: each one proven to reject, with expected vs actual; TOML loading; dated allowances."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from enarx.attestation.model import Claims, TcbStatus, Tee
from enarx.attestation.policy import Policy, PolicyError, rejection_reason

AT = datetime(2026, 1, 15, tzinfo=UTC)
M = "ab" * 48


def snp_claims(**over) -> Claims:
    base = {
        "tee": Tee.SNP,
        "measurements": {"measurement": M, "host_data": "00" * 32},
        "signer": {"id_key_digest": "11" * 48, "author_key_digest": "22" * 48},
        "svns": {"guest_svn": 2, "bootloader": 4, "tee": 0, "snp": 24, "microcode": 219},
        "tcb_status": TcbStatus.UP_TO_DATE,
        "platform": {"vmpl": 1, "abi": "1.51", "policy_flags": {"smt": True, "migrate_ma": False,
                                                                "single_socket": False, "debug": False},
                     "crl_checked": False},
    }
    base.update(over)
    return Claims(**base)


def failed(policy: Policy, claims: Claims) -> dict[str, object]:
    return {c.name: c for c in policy.appraise(claims, AT) if not c.passed}


def test_default_policy_accepts_a_clean_snp_claim_set():
    assert failed(Policy.default(), snp_claims()) == {}


def test_debug_is_refused_unless_allowed():
    bad = failed(Policy.default(), snp_claims(debug=True))
    assert bad["policy.debug"].expected == "false" and bad["policy.debug"].actual == "true"
    assert rejection_reason(list(bad.values())) == "debug"
    assert failed(Policy.from_toml("allow_debug = true"), snp_claims(debug=True)) == {}


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
    assert rejection_reason(list(bad.values())) == reason


def test_unknown_tcb_passes_by_default_but_not_when_required():
    assert failed(Policy.default(), snp_claims(tcb_status=TcbStatus.UNKNOWN)) == {}
    bad = failed(Policy.from_toml("require_tcb_info = true"), snp_claims(tcb_status=TcbStatus.UNKNOWN))
    assert rejection_reason(list(bad.values())) == "tcb-unknown"


def test_dated_status_and_advisory_allowances():
    text = """
    tcb_statuses = ["UpToDate", { status = "SWHardeningNeeded", until = 2026-02-01 }]
    advisories = [{ id = "INTEL-SA-00615", until = 2026-02-01 }, "INTEL-SA-00289"]
    """
    policy = Policy.from_toml(text)
    claims = snp_claims(tcb_status=TcbStatus.SW_HARDENING_NEEDED, advisory_ids=["INTEL-SA-00615", "INTEL-SA-00289"])
    assert [c for c in policy.appraise(claims, AT) if not c.passed] == []
    later = datetime(2026, 2, 2, tzinfo=UTC)
    bad = {c.name: c for c in policy.appraise(claims, later) if not c.passed}
    assert "expired on 2026-02-01" in bad["policy.tcb-status"].detail
    assert "INTEL-SA-00615" in bad["policy.advisories"].detail
    # a status allowed without the advisory allowance still fails on the advisory
    bad = failed(Policy.from_toml('tcb_statuses = ["SWHardeningNeeded"]'), claims)
    assert set(bad) == {"policy.advisories"}
    assert rejection_reason(list(bad.values())) == "tcb-advisory"


@pytest.mark.parametrize("name", ["measurement", "host_data", "id_key_digest", "author_key_digest"])
def test_digest_allow_and_deny(name):
    claims = snp_claims()
    actual = {**claims.measurements, **claims.signer}[name]
    other = "cd" * (len(actual) // 2)
    allow = Policy.from_toml(f'[measurements.{name}]\nallow = ["{other}"]')
    bad = failed(allow, claims)
    assert bad[f"policy.{name}.allow"].actual == actual and other in bad[f"policy.{name}.allow"].expected
    deny = Policy.from_toml(f'[signers.{name}]\ndeny = ["{actual.upper()}"]')
    assert f"policy.{name}.deny" in failed(deny, claims)
    ok = Policy.from_toml(f'[measurements.{name}]\nallow = ["{actual}", "{other}"]')
    assert failed(ok, claims) == {}


def test_rules_for_absent_claims_do_not_apply():
    policy = Policy.from_toml('[measurements.mrenclave]\nallow = ["' + "00" * 32 + '"]\n[min_svn]\nisv_svn = 3')
    assert failed(policy, snp_claims()) == {}


@pytest.mark.parametrize("name,minimum", [("guest_svn", 3), ("bootloader", 5), ("snp", 25), ("microcode", 220)])
def test_min_svn(name, minimum):
    bad = failed(Policy.from_toml(f"[min_svn]\n{name} = {minimum}"), snp_claims())
    assert bad[f"policy.min_svn.{name}"].expected == f">= {minimum}"
    assert failed(Policy.from_toml(f"[min_svn]\n{name} = {minimum - 1}"), snp_claims()) == {}


def test_snp_policy_bits_and_vmpl():
    flags = {"smt": True, "migrate_ma": True, "single_socket": False, "debug": False}
    claims = snp_claims(platform={"vmpl": 1, "abi": "1.51", "policy_flags": flags})
    assert "policy.snp.migration_agent" in failed(Policy.default(), claims)
    assert failed(Policy.from_toml("[snp]\nallow_migration_agent = true"), claims) == {}
    assert "policy.snp.smt" in failed(Policy.from_toml("[snp]\nallow_smt = false\nallow_migration_agent = true"), claims)
    vmpl = failed(Policy.from_toml("[snp]\nmax_vmpl = 0\nallow_migration_agent = true"), claims)
    assert vmpl["policy.snp.vmpl"].actual == "1"
    abi = failed(Policy.from_toml('[snp]\nmin_abi = "1.55"\nallow_migration_agent = true'), claims)
    assert abi["policy.snp.min_abi"].actual == "1.51"
    sock = failed(Policy.from_toml("[snp]\nrequire_single_socket = true\nallow_migration_agent = true"), claims)
    assert "policy.snp.single_socket" in sock


def test_tee_allow_list_and_revocation_requirement():
    assert "policy.tee" in failed(Policy.from_toml('tees = ["tdx"]'), snp_claims())
    assert "policy.tee" in failed(Policy.default(), snp_claims(tee=Tee.KVM))
    assert "policy.revocation-checked" in failed(Policy.from_toml("require_revocation_check = true"), snp_claims())


def test_rejection_lists_every_failed_rule():
    policy = Policy.from_toml('[measurements.measurement]\nallow = ["' + "00" * 48 + '"]\n[min_svn]\nsnp = 99')
    bad = failed(policy, snp_claims(debug=True, tcb_status=TcbStatus.OUT_OF_DATE))
    assert {"policy.debug", "policy.tcb-status", "policy.measurement.allow", "policy.min_svn.snp"} <= set(bad)
    assert all(c.expected is not None and c.actual is not None for c in bad.values())


@pytest.mark.parametrize("text", [
    "allow_debug = 1",
    "bogus = true",
    'tcb_statuses = ["Fine"]',
    '[measurements.measurement]\nallow = ["xyz"]',
    '[measurements.measurement]\nallow = ["aa"]\ndeny = ["aa"]',
    "[snp]\nmax_vmpl = 9",
    '[snp]\nmin_abi = "one"',
    "[min_svn]\nsnp = -1",
    'advisories = [{ id = "X", until = "soon" }]',
    "this is not toml",
])
def test_bad_policies_are_refused(text):
    with pytest.raises(PolicyError):
        Policy.from_toml(text)


def test_policy_file(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text("allow_debug = true\n")
    assert Policy.from_file(path).allow_debug
    with pytest.raises(PolicyError):
        Policy.from_file(tmp_path / "missing.toml")
