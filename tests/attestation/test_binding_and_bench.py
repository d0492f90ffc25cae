"""report_data ↔ key binding for every TEE, and a smoke run of the benchmark."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from enarx.attestation.binding import binding_check, report_data_for, require_binding
from enarx.attestation.model import Claims, Tee, VerificationError


@pytest.mark.parametrize("tee,algo,size", [(Tee.SNP, hashlib.sha384, 48), (Tee.SGX, hashlib.sha256, 32),
                                           (Tee.TDX, hashlib.sha256, 32), (Tee.NITRO, hashlib.sha256, 32)])
def test_binding_is_a_digest_of_the_der_spki(tee, algo, size):
    key = ec.generate_private_key(ec.SECP256R1())
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    data = report_data_for(key, tee)
    assert data == algo(spki).digest() + bytes(64 - size)
    claims = Claims(tee=tee, report_data=data[:size] + b"\xee" * (64 - size))  # the tail is not constrained
    assert binding_check(claims, key.public_key()).passed
    assert binding_check(claims, spki).passed
    claims.report_data = bytes([data[0] ^ 1]) + data[1:]
    check = binding_check(claims, key.public_key())
    assert not check.passed and check.expected == algo(spki).digest().hex()
    with pytest.raises(VerificationError) as err:
        require_binding(claims, key)
    assert err.value.reason == "binding"


def test_bench_smoke():
    from enarx.attestation import bench

    rows = bench.run(seconds=0.05)
    snp = next(r for r in rows if r["format"] == "snp")
    assert snp["verify_per_s"] > 0 and snp["floor_per_s"] > 0
    assert "| snp |" in bench.markdown(rows)
