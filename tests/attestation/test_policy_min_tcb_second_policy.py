"""Regression (review): a keep with old SEV-SNP firmware got past a *second* policy's ``[snp.min_tcb]``.

``Policy.evaluate_tcb`` (the only place ``min_tcb`` is applied) runs inside ``Verifier.verify`` with the
verifier's own policy. Every other appraisal — a package's keep policy in the key broker
(``kbs/service.py``: ``parse_keep_policy(...).appraise``), ``enarx push``, Drawbridge's repository rules —
calls ``Policy.appraise`` on the claims the verifier returned, whose TCB status is still ``NotEvaluated``,
which the default ``tcb_statuses`` accept. So a publisher's signed ``[snp.min_tcb.Milan]`` is silently
ignored, and the package key is released to a keep whose firmware is below it.
"""

from __future__ import annotations

from enarx.attestation.policy import Policy
from enarx.attestation.simulate.snp import simulate_snp
from enarx.attestation.verifier import Verifier
from enarx.packaging import trust

STRICT = "[snp.min_tcb.Milan]\nbootloader = 9\ntee = 9\nsnp = 99\nmicrocode = 250\n"  # above the simulator's TCB


def _claims_verified_under_a_broker_policy_without_min_tcb():
    sim = simulate_snp()
    verdict = Verifier(anchors=sim.trust_anchors()).verify(sim.report, sim.collateral)
    assert verdict.status == "trusted", verdict.checks
    return verdict.claims


def test_policy_appraise_applies_its_own_min_tcb():
    claims = _claims_verified_under_a_broker_policy_without_min_tcb()
    failed = [c for c in Policy.from_toml(STRICT).appraise(claims) if not c.passed]
    assert failed, "a policy with [snp.min_tcb.Milan] accepted a report below it (TCB never evaluated)"


def test_package_keep_policy_min_tcb_is_enforced_by_the_broker_path():
    claims = _claims_verified_under_a_broker_policy_without_min_tcb()
    checks = trust.parse_keep_policy("allow_test_anchors = true\n" + STRICT, "package policy").appraise(claims)
    assert any(not c.passed for c in checks), "the package's min_tcb was ignored: the key would be released"


def test_a_laxer_verifier_min_tcb_does_not_satisfy_a_stricter_package_min_tcb():
    """The broker evaluated the status against its own (lower) minimum: UpToDate. The package's higher
    minimum must be judged against the reported TCB again, not against the broker's status."""
    sim = simulate_snp()
    lax = Policy.from_toml("[snp.min_tcb.Milan]\nbootloader = 0\ntee = 0\nsnp = 0\nmicrocode = 0\n")
    verdict = Verifier(anchors=sim.trust_anchors(), policy=lax).verify(sim.report, sim.collateral)
    assert verdict.status == "trusted" and verdict.claims.tcb_status.value == "UpToDate"
    checks = trust.parse_keep_policy("allow_test_anchors = true\n" + STRICT, "package policy").appraise(verdict.claims)
    assert any(not c.passed for c in checks), "the broker's laxer min_tcb let the package's stricter one pass"
