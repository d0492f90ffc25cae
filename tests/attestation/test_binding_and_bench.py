"""report_data ↔ key binding for every TEE, and the benchmark's floor: the signatures each verification performs."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from enarx.attestation.binding import binding_check, report_data_for, require_binding
from enarx.attestation.claims import CLAIM_TYPES, Provenance
from enarx.attestation.model import Revocation, Tee, VerificationError


@pytest.mark.parametrize("tee,algo,size", [(Tee.SNP, hashlib.sha384, 48), (Tee.SGX, hashlib.sha256, 32),
                                           (Tee.TDX, hashlib.sha256, 32), (Tee.NITRO, hashlib.sha256, 32)])
def test_binding_is_a_digest_of_the_der_spki(tee, algo, size):
    key = ec.generate_private_key(ec.SECP256R1())
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    data = report_data_for(key, tee)
    assert data == algo(spki).digest() + bytes(64 - size)
    claims = CLAIM_TYPES[tee](report_data=data[:size] + b"\xee" * (64 - size), debug=False,  # tail is free
                              provenance=Provenance("", "", False, Revocation.FULL))
    assert binding_check(claims, key.public_key()).passed
    assert binding_check(claims, spki).passed
    claims = dataclasses.replace(claims, report_data=bytes([data[0] ^ 1]) + data[1:])
    check = binding_check(claims, key.public_key())
    assert not check.passed and check.expected == algo(spki).digest().hex()
    assert f"SHA-{size * 8}(SubjectPublicKeyInfo)" in check.detail  # the digest it names is the one compared
    with pytest.raises(VerificationError) as err:
        require_binding(claims, key)
    assert err.value.reason == "binding"


def test_bench_rows_count_the_signatures_each_verification_performs():
    """The floor is measured, not assumed: cold verifications check every signature (SNP: report, VCEK, ASK,
    ARK CRL; Intel: quote, QE report, PCK, PCK CA, two CRLs, TCB info, QE identity, TCB signer), warm ones
    only the evidence's own."""
    from enarx.attestation import bench

    rows = bench.collect(1, seconds=0.02)
    labels = {r["name"].split(" ")[0] + (" cold" if "cold" in r["name"] else " warm"): r for r in rows}
    counts = {k: int(r["baseline_label"].split("the ")[1].split(" ")[0]) for k, r in labels.items()}
    assert counts == {"SNP cold": 4, "SNP warm": 1, "SGX cold": 9, "SGX warm": 2, "TDX cold": 9, "TDX warm": 2}
    for row in rows:
        assert {"group", "name", "unit", "baseline_label", "baseline", "value", "ratio", "target", "compare",
                "rounds", "note"} <= set(row)
        assert row["compare"] == ">=" and row["target"] in (0.5, 0.25)
        # a verification performs at least its floor's work: the ratio is a fraction (noise aside)
        assert 0 < row["ratio"] < 1.5 and row["value"] > 0 and row["baseline"] > 0
    assert "| SGX verify + appraise, cold (memo off) |" in bench.markdown(rows)
