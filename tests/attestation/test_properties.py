"""Properties of the fail-closed design, checked with hypothesis:

1. no policy rule passes on evidence that lacks the fact it is about (any TEE, any fact name, any rule);
2. removing any one collateral item never turns a rejection (or failure) into "trusted".
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from functools import cache

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enarx.attestation.claims import CLAIM_TYPES, NUMBER, Provenance
from enarx.attestation.model import CollateralSet, Revocation, TcbStatus, Tee
from enarx.attestation.policy import (
    DigestAllowed,
    MinSvn,
    Policy,
    QeIdentityChecked,
    RevocationChecked,
    SnpGuestPolicy,
    TcbStatusIn,
)
from enarx.attestation.simulate.intel import simulate_sgx, simulate_tdx
from enarx.attestation.simulate.snp import simulate_snp
from enarx.attestation.verifier import Verifier

AT = datetime(2026, 1, 15, tzinfo=UTC)
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# every fact name any TEE has (dynamic ones sampled), and names no TEE has
NAMES = sorted({n for c in CLAIM_TYPES.values() for n in (*c.MEASUREMENTS, *c.SIGNERS, *c.SVNS)}
               | {"pcr0", "pcr7", "pcr31", "measurement0", "measurement12"})


# facts a piece of evidence may or may not carry, with a value for when it does
OPTIONAL = {"author_key_digest": b"\x01" * 48, "mrservicetd": b"\x02" * 48, "ppid": b"\x03" * 16, "csp_id": "CN=x",
            "product": "Milan", "tee_tcb_svn2": bytes(16)}


def claims_strategy() -> st.SearchStrategy:
    """Claims of any TEE, with the optional facts (author key, MRSERVICETD, product, PCRs…) present or not."""
    def build(tee: Tee, data: st.DataObject):
        cls = CLAIM_TYPES[tee]
        provenance = Provenance("root", "00", data.draw(st.booleans()), data.draw(st.sampled_from(list(Revocation))),
                                tcb_info=data.draw(st.sampled_from([None, True, False])),
                                qe_identity=data.draw(st.sampled_from([None, True, False])))
        kw: dict = {"report_data": bytes(64), "debug": data.draw(st.booleans()), "provenance": provenance,
                    "tcb_status": data.draw(st.sampled_from(list(TcbStatus)))}
        for f in dataclasses.fields(cls):
            if f.name in OPTIONAL:
                kw[f.name] = data.draw(st.sampled_from([None, OPTIONAL[f.name]]))
        if tee is Tee.NITRO:
            kw["pcrs"] = data.draw(st.dictionaries(st.integers(0, 31), st.binary(min_size=48, max_size=48),
                                                   max_size=4))
        if tee is Tee.NVIDIA:
            kw["blocks"] = data.draw(st.dictionaries(st.integers(0, 20), st.binary(min_size=48, max_size=48),
                                                     max_size=4))
        if tee is Tee.TDX:
            kw["rtmrs"] = tuple(data.draw(st.lists(st.binary(min_size=48, max_size=48), max_size=4)))
            kw["tee_tcb_svn"] = data.draw(st.sampled_from([b"", bytes(16)]))
        return cls(**kw)

    return st.builds(build, st.sampled_from([t for t in Tee if t in CLAIM_TYPES]), st.data())


@SETTINGS
@given(claims_strategy(), st.sampled_from(NAMES), st.binary(min_size=1, max_size=48), st.integers(0, 1 << 16))
def test_no_fact_rule_passes_without_its_fact(claims, name, digest, minimum):
    """A rule about a fact the evidence does not carry fails (an SGX allow-list never accepts an SNP image)."""
    absent = claims.fact(name) is None
    rules = [(DigestAllowed(name, allow=(digest.hex(),)), absent), (DigestAllowed(name, deny=(digest.hex(),)), absent),
             (MinSvn(name, minimum), absent or type(claims).fact_kind(name) != NUMBER)]
    for rule, must_fail in rules:
        checks = rule.evaluate(claims, AT)
        if must_fail:
            assert checks and any(not c.passed for c in checks), (type(claims).__name__, name, rule, checks)
    if type(claims).fact_kind(name) is None:
        assert absent  # a name this TEE does not have is never a fact of it


@SETTINGS
@given(claims_strategy())
def test_no_collateral_rule_passes_without_its_collateral(claims):
    p = claims.provenance
    if claims.tcb_status is TcbStatus.UNKNOWN:
        assert not all(c.passed for c in TcbStatusIn((), None).evaluate(claims, AT))
    if p.revocation in (Revocation.NOT_CHECKED, Revocation.PARTIAL):
        assert not all(c.passed for c in RevocationChecked().evaluate(claims, AT))
    if p.revocation is Revocation.NOT_AVAILABLE:
        assert not all(c.passed for c in RevocationChecked(require_available=True).evaluate(claims, AT))
    if not p.qe_identity:
        assert not all(c.passed for c in QeIdentityChecked().evaluate(claims, AT))
    if claims.tee is not Tee.SNP:
        assert not all(c.passed for c in SnpGuestPolicy().evaluate(claims, AT))
    # and the default policy as a whole refuses anything missing one of them
    verdict_checks = Policy.default().appraise(claims, AT)
    missing = (claims.tcb_status is TcbStatus.UNKNOWN or p.revocation in (Revocation.NOT_CHECKED, Revocation.PARTIAL)
               or (claims.tee in (Tee.SGX, Tee.TDX) and not p.qe_identity))
    if missing:
        assert any(not c.passed for c in verdict_checks)


# --- removing one collateral item --------------------------------------------------------------------------

SCENARIOS = {
    # name: (maker, policy TOML) — each is rejected or failed with its full collateral. The policies relax
    # nothing: a relaxation (say of CRLs) is by definition what lets a missing item through.
    "sgx-out-of-date": (lambda: simulate_sgx(tcb_status="OutOfDate"), ""),
    "sgx-debug": (lambda: simulate_sgx(debug=True), ""),
    "sgx-revoked-pck": (lambda: simulate_sgx(revoke_pck=True), ""),
    "sgx-wrong-mrenclave": (simulate_sgx, '[measurements.mrenclave]\nallow = ["' + "00" * 32 + '"]'),
    "tdx-qe-out-of-date": (lambda: simulate_tdx(qe_tcb_status="OutOfDate"), ""),
    "tdx-module-out-of-date": (lambda: simulate_tdx(tdx_module_status="OutOfDate"), ""),
    "tdx-revoked-platform-ca": (lambda: simulate_tdx(revoke_platform_ca=True), ""),
    "tdx-qe-identity-mismatch": (lambda: simulate_tdx(qe_identity_mrsigner=b"\x02" * 48), ""),
    "snp-revoked-ask": (lambda: simulate_snp(revoke_ask=True), ""),
    "snp-debug": (lambda: simulate_snp(debug=True), ""),
}


@cache
def scenario(name: str):
    make, toml = SCENARIOS[name]
    sim = make()
    evidence = getattr(sim, "quote", None) or sim.report
    anchors = sim.anchors if hasattr(sim, "quote") else sim.trust_anchors()
    at = getattr(sim, "at", None) or datetime.now(UTC)
    verifier = Verifier(anchors=anchors, policy=Policy.from_toml(toml))
    full = verifier.verify(evidence, sim.collateral, at=at)
    assert full.status != "trusted", name
    return verifier, evidence, sim.collateral, at


def items(collateral: CollateralSet) -> list[tuple[str, int]]:
    return [(kind, i) for kind in ("certificates", "crls", "json_documents")
            for i in range(len(getattr(collateral, kind)))]


def without(collateral: CollateralSet, kind: str, index: int) -> CollateralSet:
    parts = {k: list(getattr(collateral, k)) for k in ("certificates", "crls", "json_documents")}
    del parts[kind][index]
    return CollateralSet(**parts)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(SCENARIOS)), st.integers(0, 20))
def test_removing_one_collateral_item_never_makes_a_refusal_trusted(name, pick):
    verifier, evidence, collateral, at = scenario(name)
    choices = items(collateral)
    kind, index = choices[pick % len(choices)]
    verdict = verifier.verify(evidence, without(collateral, kind, index), at=at)
    assert verdict.status != "trusted", (name, kind, index)


def test_every_scenario_loses_trust_item_by_item():
    """The exhaustive version of the property above, for every scenario and every item."""
    for name in SCENARIOS:
        verifier, evidence, collateral, at = scenario(name)
        for kind, index in items(collateral):
            assert verifier.verify(evidence, without(collateral, kind, index), at=at).status != "trusted", \
                (name, kind, index)
