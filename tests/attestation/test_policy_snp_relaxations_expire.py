"""Every relaxation of the fail-closed defaults can expire, SEV-SNP's VMPL and migration agent too (review gap).

Issue 8: "Relaxing any of them is an explicit, named policy entry (with an optional expiry, as allowances have
now)". ``allow_debug``, ``tcb_statuses``, ``advisories`` and ``allow_missing_collateral`` take ``until``;
SEV-SNP's ``max_vmpl`` and ``allow_migration_agent`` do not (``_snp_rules`` accepts only a bare bool / int),
so an operator who relaxes VMPL 0 "for the migration week" relaxes it forever.
"""

from __future__ import annotations

from datetime import UTC, datetime

from enarx.attestation.policy import Policy
from enarx.attestation.simulate.snp import simulate_snp
from enarx.attestation.verifier import Verifier


def test_a_migration_agent_allowance_can_expire():
    policy = Policy.from_toml('[snp]\nallow_migration_agent = { until = "2020-01-31" }\n')
    sim = simulate_snp(migrate_ma=True)
    verdict = Verifier(anchors=sim.trust_anchors(), policy=policy).verify(sim.report, sim.collateral,
                                                                          at=datetime.now(UTC))
    assert verdict.status == "rejected"


def test_a_vmpl_relaxation_can_expire():
    policy = Policy.from_toml('[snp]\nmax_vmpl = { value = 3, until = "2020-01-31" }\n')
    sim = simulate_snp(vmpl=3)
    verdict = Verifier(anchors=sim.trust_anchors(), policy=policy).verify(sim.report, sim.collateral)
    assert verdict.status == "rejected"


def test_the_snp_relaxations_hold_until_their_date():
    for toml, fields in (('[snp]\nallow_migration_agent = { until = "2999-01-31" }\n', {"migrate_ma": True}),
                         ('[snp]\nmax_vmpl = { value = 3, until = "2999-01-31" }\n', {"vmpl": 3})):
        sim = simulate_snp(**fields)
        verdict = Verifier(anchors=sim.trust_anchors(), policy=Policy.from_toml(toml)).verify(sim.report, sim.collateral)
        assert verdict.status == "trusted", (toml, verdict.checks)
        strict = Verifier(anchors=sim.trust_anchors()).verify(sim.report, sim.collateral)
        assert strict.status == "rejected", toml  # and the default refuses it
