"""bench/cryptocount.py counts the signature operations code really performs (the honest crypto floor)."""

from __future__ import annotations

import sys
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import NameOID

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import cryptocount
import instrumented


def _cert(subject_key, issuer_key, name: str, issuer: str) -> x509.Certificate:
    now = datetime.now(UTC)
    return (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(subject_key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + timedelta(days=1)).sign(issuer_key, hashes.SHA384()))


def test_counts_each_operation_by_algorithm_including_failures_and_threads():
    p256, p384 = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP384R1())
    rsa_key, ed = rsa.generate_private_key(65537, 3072), ed25519.Ed25519PrivateKey.generate()
    sig = p256.sign(b"data", ec.ECDSA(hashes.SHA256()))
    root = _cert(rsa_key, rsa_key, "root", "root")
    leaf = _cert(p384, rsa_key, "leaf", "root")
    crl = (x509.CertificateRevocationListBuilder().issuer_name(root.subject).last_update(datetime.now(UTC))
           .next_update(datetime.now(UTC) + timedelta(days=1)).sign(p384, hashes.SHA384()))
    with cryptocount.counting() as ops:
        p256.public_key().verify(sig, b"data", ec.ECDSA(hashes.SHA256()))
        with pytest.raises(InvalidSignature):  # a failed check was still done
            p256.public_key().verify(sig, b"other", ec.ECDSA(hashes.SHA256()))
        rsa_key.sign(b"x", padding.PKCS1v15(), hashes.SHA256())
        leaf.verify_directly_issued_by(root)
        assert crl.is_signature_valid(p384.public_key())
        ed.sign(b"x")
        thread = threading.Thread(target=lambda: p384.sign(b"t", ec.ECDSA(hashes.SHA384())))
        thread.start()
        thread.join()
        _cert(ed, p256, "issued", "ca")  # a builder signs inside cryptography: counted once
    assert ops == Counter({("verify", "ECDSA P-256"): 2, ("sign", "RSA-3072"): 1, ("verify", "RSA-3072"): 1,
                           ("verify", "ECDSA P-384"): 1, ("sign", "Ed25519"): 1, ("sign", "ECDSA P-384"): 1,
                           ("sign", "ECDSA P-256"): 1})
    with cryptocount.counting() as after:
        pass
    assert not after, "counting stops with its block"
    assert cryptocount.describe(Counter({("verify", "ECDSA P-256"): 6, ("sign", "ECDSA P-256"): 2}), per=2) == (
        "1 ECDSA P-256 sign + 3 ECDSA P-256 verify")


def test_floor_does_the_counted_work_in_each_process():
    ops = Counter({("verify", "ECDSA P-256"): 2, ("sign", "Ed25519"): 1})
    assert len(cryptocount._work(ops)) == 3
    assert cryptocount.floor_rate(ops, seconds=0.05) > 0
    assert cryptocount.floor_rate(ops, seconds=0.05, processes=2) > 0
    with pytest.raises(ValueError, match="no signature operations"):
        cryptocount.floor_rate(Counter())


def test_memo_off_makes_every_verification_do_all_its_signature_work():
    """The cold case of the Steward and verifier floors: with the memo off a repeat does the first call's work."""
    from enarx.attestation import roots
    from enarx.attestation.simulate.intel import simulate_sgx
    from enarx.attestation.verifier import Verifier

    sim = simulate_sgx()
    when = sim.at + timedelta(seconds=1)
    counts = []
    undo = None
    try:
        for switch in (lambda: None, instrumented.memo_off):
            undo = switch() or undo
            verifier = Verifier(anchors=roots.builtin_anchors([sim.root]))
            verifier.verify(sim.quote, sim.collateral, at=when)
            with cryptocount.counting() as ops:
                assert verifier.verify(sim.quote, sim.collateral, at=when).status == "trusted"
            counts.append(sum(ops.values()))
    finally:
        if undo is not None:
            undo()
    warm, cold = counts
    assert cold > warm >= 1
