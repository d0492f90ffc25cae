"""The Verifier's one cache: it speeds up repeated verification with the same collateral, never turns a
failure into a success, never skips a check that depends on the evaluation time, and stays within its
byte budget (no module-level cache exists to grow behind its back)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from enarx.attestation import crypto
from enarx.attestation.memo import VerifierCache, digest
from enarx.attestation.model import CollateralSet
from enarx.attestation.simulate.intel import simulate_sgx, simulate_tdx
from enarx.attestation.simulate.snp import simulate_snp
from enarx.attestation.verifier import Verifier


def verifier(sim, **kw) -> Verifier:
    return Verifier(anchors=sim.anchors, **kw)


def genuine(v: Verifier, sim, **kw):
    return v.genuine(kw.pop("quote", sim.quote), kw.pop("collateral", sim.collateral), at=kw.pop("at", sim.at))


def refused(v: Verifier, sim, reason: str, **kw):
    from enarx.attestation.model import AttestationError

    with pytest.raises(AttestationError) as info:
        genuine(v, sim, **kw)
    assert info.value.reason == reason, str(info.value)
    return info.value


def flip(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0x01]) + data[offset + 1 :]


def signatures_in(fn) -> list[crypto.Operation]:
    with crypto.recording() as ops:
        fn()
    return ops


@pytest.mark.parametrize("make", [simulate_sgx, simulate_tdx])
def test_tampered_quote_after_a_good_one_still_fails(make):
    sim = make()
    v = verifier(sim)
    for _ in range(2):  # warm: every collateral signature is in the memo now
        genuine(v, sim)
    for offset in (30, 100, 300):  # header, body: covered by the attestation key's signature
        err = refused(v, sim, "signature", quote=flip(sim.quote, offset))
        assert not err.checks[-1].passed
    genuine(v, sim)  # and the good one is still good


@pytest.mark.parametrize("doc", ["tcbinfo.json", "qe_identity.json"])
def test_flipped_collateral_byte_after_success_still_fails(doc):
    sim = simulate_sgx()
    v = verifier(sim)
    genuine(v, sim)
    entries = len(v.cache)

    def tamper(raw: bytes) -> bytes:  # one flipped byte inside the signed member that still parses (17 -> 16)
        m = re.search(rb'"tcbEvaluationDataNumber":\d+', raw)
        assert m is not None
        return flip(raw, m.end() - 1)

    docs = [(n, tamper(raw) if n == doc else raw) for n, raw in sim.collateral.json_documents]
    tampered = CollateralSet(certificates=sim.collateral.certificates, crls=sim.collateral.crls, json_documents=docs)
    for _ in range(3):  # a failure is recomputed every time, never remembered
        err = refused(v, sim, "signature", collateral=tampered)
        assert err.checks[-1].name.endswith("-signature")
    # only the tampered document's parse was added: no signature success was remembered for it
    assert len(v.cache) == entries + 1
    genuine(v, sim)


def test_time_dependent_checks_run_on_every_call():
    sim = simulate_sgx(tcb_validity_days=10)
    v = verifier(sim)
    genuine(v, sim, at=sim.at + timedelta(days=9))
    refused(v, sim, "expired", at=sim.at + timedelta(days=11))
    refused(v, sim, "not-yet-valid", at=sim.at - timedelta(days=2))
    cert_sim = simulate_tdx(cert_validity_days=5, include_tcb_info=False, include_qe_identity=False,
                            include_crls=False)
    v = verifier(cert_sim)
    genuine(v, cert_sim)
    refused(v, cert_sim, "expired", at=cert_sim.at + timedelta(days=6))


def test_revocation_checked_on_every_call():
    sim = simulate_sgx(revoke_pck=True)
    v = verifier(sim)
    for _ in range(2):
        refused(v, sim, "revoked")


def test_untrusted_root_after_success():
    from enarx.attestation import roots

    sim = simulate_tdx()
    warm = verifier(sim)
    genuine(warm, sim)
    # the same cache content gives nothing to a verifier that does not trust the test root
    plain = Verifier(anchors=roots.builtin_anchors())
    plain.cache = warm.cache
    refused(plain, sim, "untrusted-root")


@pytest.mark.parametrize("make", [simulate_sgx, simulate_tdx])
def test_signature_counts_warm_and_cold(make):
    """Cold (memo off): every signature is verified on every call, each once, and none fails (no retry
    against the vendor root that shares the simulator root's name). Warm: only the quote's own two."""
    sim = make()
    cold = verifier(sim, memo=False)
    first = signatures_in(lambda: genuine(cold, sim))
    again = signatures_in(lambda: genuine(cold, sim))
    assert len(first) == len(again) == 9  # att key, QE report, PCK, PCK CA, 2 CRLs, TCB info, QE id, TCB signer
    assert all(crypto.replay(op.public_key, op.scheme, op.data, op.signature) for op in first)
    warm = verifier(sim)
    genuine(warm, sim)
    ops = signatures_in(lambda: genuine(warm, sim))
    assert len(ops) == 2  # the attestation key's and the PCK's over this quote's QE report


def test_snp_signature_counts():
    sim = simulate_snp()
    v = Verifier(anchors=sim.trust_anchors())
    cold = Verifier(anchors=sim.trust_anchors(), memo=False)
    assert len(signatures_in(lambda: cold.genuine(sim.report, sim.collateral))) == 4  # report, VCEK, ASK, ARK CRL
    v.genuine(sim.report, sim.collateral)
    assert len(signatures_in(lambda: v.genuine(sim.report, sim.collateral))) == 1  # the report


def test_cache_remembers_only_successes_and_stays_in_budget():
    cache = VerifierCache(max_bytes=4096)
    calls = []

    def bad() -> bool:
        calls.append("bad")
        return False

    def good() -> bool:
        calls.append("good")
        return True

    k1 = digest(b"t", b"1")
    assert not cache.signature(k1, bad) and not cache.signature(k1, bad)
    assert calls == ["bad", "bad"] and len(cache) == 0
    assert cache.signature(k1, good) and cache.signature(k1, bad)  # remembered: not recomputed
    assert calls == ["bad", "bad", "good"]
    for i in range(100):
        cache.signature(digest(b"t", str(i).encode()), good)
    assert cache.size_bytes <= 4096 and len(cache) < 100  # least recently used evicted
    assert cache.parsed(b"x", b"y" * 200, len) == 200
    assert cache.parsed(b"x", b"z" * 5000, len) == 5000  # larger than a quarter of the budget: not kept
    assert cache.size_bytes <= 4096
    # keys are unambiguous: part boundaries matter
    assert digest(b"t", b"ab", b"c") != digest(b"t", b"a", b"bc")


def test_memo_off_recomputes():
    cache = VerifierCache(memo=False)
    calls = []
    key = digest(b"t", b"1")
    for _ in range(3):
        assert cache.signature(key, lambda: calls.append(1) or True)
    assert len(calls) == 3


def test_hostile_crls_do_not_grow_memory_beyond_the_budget():
    """Finding 5: parsed CRLs sat in a module-level cache of 4,096 entries. Now every parsed item lives in the
    Verifier's cache, charged by size and bounded in bytes."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    sim = simulate_sgx()
    v = verifier(sim, cache_bytes=1 << 20)
    key = ec.generate_private_key(ec.SECP256R1())
    for i in range(40):
        b = (x509.CertificateRevocationListBuilder().issuer_name(sim.certs["platform"].subject)
             .last_update(sim.at - timedelta(hours=1)).next_update(sim.at + timedelta(days=1)))
        for serial in range(1, 400):
            b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(serial + i * 1000)
                                          .revocation_date(sim.at - timedelta(hours=2)).build())
        crl = b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
        hostile = CollateralSet(crls=[crl])
        v.verify(sim.quote, hostile, at=sim.at)  # not this PKI's CRL (other key): skipped or refused
        assert v.cache.size_bytes <= 1 << 20
