"""The signature memo of Intel verification: it speeds up repeated verification with the same collateral
and never turns a failure into a success, nor skips a check that depends on the evaluation time."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from enarx.attestation.intel import verify as intel_verify
from enarx.attestation.intel.memo import SIGNATURES, SignatureMemo, memo_key
from enarx.attestation.intel.verify import verify_quote
from enarx.attestation.model import CollateralSet, VerificationError
from enarx.attestation.simulate.intel import simulate_sgx, simulate_tdx


def verify(sim, **kw):
    return verify_quote(kw.pop("quote", sim.quote), kw.pop("collateral", sim.collateral), kw.pop("at", sim.at),
                        kw.pop("anchors", sim.anchors))


def fails(sim, reason, **kw):
    with pytest.raises(VerificationError) as info:
        verify(sim, **kw)
    assert info.value.reason == reason, str(info.value)
    return info.value


def flip(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0x01]) + data[offset + 1 :]


def flip_evaluation_number(raw: bytes) -> bytes:
    """One flipped byte inside the signed JSON member that still parses (17 -> 16)."""
    m = re.search(rb'"tcbEvaluationDataNumber":\d+', raw)
    assert m is not None
    return flip(raw, m.end() - 1)


@pytest.mark.parametrize("make", [simulate_sgx, simulate_tdx])
def test_tampered_quote_after_a_good_one_still_fails(make):
    sim = make()
    for _ in range(2):  # warm: every collateral signature is in the memo now
        verify(sim)
    q_len = len(sim.quote)
    for offset in (30, 100, 300):  # header, body: covered by the attestation key's signature
        assert offset < q_len
        err = fails(sim, "signature", quote=flip(sim.quote, offset))
        assert not err.checks[-1].passed
    verify(sim)  # and the good one is still good


@pytest.mark.parametrize("doc", ["tcbinfo.json", "qe_identity.json"])
def test_flipped_collateral_byte_after_success_still_fails(doc):
    sim = simulate_sgx()
    verify(sim)
    before = len(SIGNATURES)
    docs = [(n, flip_evaluation_number(raw) if n == doc else raw) for n, raw in sim.collateral.json_documents]
    tampered = CollateralSet(certificates=sim.collateral.certificates, crls=sim.collateral.crls, json_documents=docs)
    for _ in range(3):  # a failure is recomputed every time, never remembered
        err = fails(sim, "signature", collateral=tampered)
        assert err.checks[-1].name.endswith("-signature")
    assert len(SIGNATURES) == before  # the failures added nothing
    verify(sim)


def test_forged_crl_after_success_still_fails():
    sgx, tdx = simulate_sgx(), simulate_tdx()
    verify(sgx)
    # CRLs bearing the right issuer names, signed by another PKI's keys
    forged = CollateralSet(certificates=sgx.collateral.certificates, crls=tdx.collateral.crls,
                           json_documents=sgx.collateral.json_documents)
    for _ in range(2):
        fails(sgx, "signature", collateral=forged)


def test_time_dependent_checks_run_on_every_call():
    sim = simulate_sgx(tcb_validity_days=10)
    verify(sim, at=sim.at + timedelta(days=9))
    err = fails(sim, "expired", at=sim.at + timedelta(days=11))
    assert "expired at" in str(err)
    fails(sim, "expired", at=sim.at - timedelta(days=2))
    cert_sim = simulate_tdx(cert_validity_days=5, include_tcb_info=False, include_qe_identity=False,
                            include_crls=False)
    verify(cert_sim)
    fails(cert_sim, "expired", at=cert_sim.at + timedelta(days=6))


def test_revocation_checked_on_every_call():
    sim = simulate_sgx(revoke_pck=True)
    for _ in range(2):
        fails(sim, "revoked")


def test_untrusted_root_after_success():
    sim = simulate_tdx()
    verify(sim)
    real_like = type(sim.anchors)(builtin=[simulate_sgx().root])
    fails(sim, "untrusted-root", anchors=real_like)


def test_each_signature_verified_once_per_call_without_memo(monkeypatch):
    """With the memo off, each certificate link, CRL and collateral signature is still checked once."""
    sim = simulate_sgx()
    links: list[tuple[bytes, bytes]] = []
    real = intel_verify._directly_issued

    def spy(cert, issuer):
        links.append((intel_verify._facts(cert).digest, intel_verify._facts(issuer).digest))
        return real(cert, issuer)

    monkeypatch.setattr(intel_verify, "_directly_issued", spy)
    monkeypatch.setattr(SIGNATURES, "enabled", False)
    claims, _, _ = verify(sim)
    assert claims.tcb_status is not None
    assert len(links) == len(set(links))
    first = len(links)
    verify(sim)
    assert len(links) == 2 * first  # nothing remembered across calls when disabled


def test_warm_call_reuses_link_results(monkeypatch):
    sim = simulate_tdx()
    verify(sim)
    links = []
    real = intel_verify._directly_issued
    monkeypatch.setattr(intel_verify, "_directly_issued", lambda c, i: links.append(1) or real(c, i))
    verify(sim)
    assert links == []
    SIGNATURES.clear()
    verify(sim)
    assert links  # recomputed once the memo is empty


def test_memo_remembers_only_successes():
    memo = SignatureMemo(maxsize=2)
    calls = []

    def bad() -> bool:
        calls.append("bad")
        return False

    def good() -> bool:
        calls.append("good")
        return True

    k1, k2, k3 = memo_key(b"t", b"1"), memo_key(b"t", b"2"), memo_key(b"t", b"3")
    assert not memo.verified(k1, bad)
    assert not memo.verified(k1, bad)
    assert calls == ["bad", "bad"] and len(memo) == 0
    assert memo.verified(k1, good) and memo.verified(k1, bad)  # remembered: not recomputed
    assert calls == ["bad", "bad", "good"]
    memo.verified(k2, good)
    memo.verified(k3, good)  # evicts k1 (least recently used)
    assert len(memo) == 2
    assert not memo.verified(k1, bad)
    memo.clear()
    assert len(memo) == 0
    # keys are unambiguous: part boundaries matter
    assert memo_key(b"t", b"ab", b"c") != memo_key(b"t", b"a", b"bc")
