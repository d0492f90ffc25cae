"""The real Enarx CSRs in the shared corpus get the outcome csr.tsv gives, and policy/time variations."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import pytest
from _helpers import CA, MILAN_AT, PERMISSIVE, SGX_AT, SGX_CSR, chains_to, steward

from enarx.attestation.verifier import parse_time
from enarx.steward.issuer import read_claims
from enarx.steward.service import Refusal


def _csr(corpora: Path, name: str) -> bytes:
    return (corpora / "steward-csr" / name).read_bytes()


def test_tsv_outcomes_under_default_policy(corpora: Path) -> None:
    with open(corpora / "steward-csr" / "csr.tsv", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert rows
    for row in rows:
        s = steward(at=parse_time(row["at"]))
        body = (corpora / row["file"]).read_bytes()
        if row["expect"] == "rejected":
            with pytest.raises(Refusal) as info:
                s.attest(body)
            assert 400 <= info.value.status < 500
        else:
            s.attest(body)


def test_milan_legacy_container_is_rejected_with_reason(corpora: Path) -> None:
    with pytest.raises(Refusal) as info:
        steward(at=MILAN_AT).attest(_csr(corpora, "milan.csr"))
    assert info.value.status == 400 and info.value.reason == "legacy-evidence"
    assert "CrlList" in info.value.detail


def test_sgx_out_of_date_rejected_by_default(corpora: Path) -> None:
    with pytest.raises(Refusal) as info:
        steward(at=SGX_AT).attest(_csr(corpora, SGX_CSR))
    r = info.value
    assert r.status == 403 and r.reason == "tcb-outofdate"
    assert {c.name for c in r.checks} >= {"policy.tcb-status", "policy.advisories"}


def test_sgx_certified_under_permissive_policy(corpora: Path) -> None:
    issued = steward(policy=PERMISSIVE, at=SGX_AT, name="permissive").attest(_csr(corpora, SGX_CSR))
    assert chains_to(issued.cert, CA.cert)
    claims = read_claims(issued.cert)
    assert claims["tee"] == "sgx" and claims["tcb_status"] == "OutOfDate" and claims["policy"] == "permissive"
    assert claims["signer"]["mrsigner"].startswith("7a49a07df0f8")
    assert claims["debug"] is False and claims["insecure"] is False
    # validity never beyond the collateral (first CRL nextUpdate), far less than 28 days here
    assert issued.cert.not_valid_after_utc == datetime(2023, 2, 24, 6, 0, 49, tzinfo=UTC)
    assert issued.cert.not_valid_before_utc == SGX_AT


def test_sgx_refused_for_another_mrsigner(corpora: Path) -> None:
    policy = {**PERMISSIVE, "signers": {"mrsigner": {"allow": ["11" * 32]}}}
    with pytest.raises(Refusal) as info:
        steward(policy=policy, at=SGX_AT).attest(_csr(corpora, SGX_CSR))
    assert info.value.status == 403 and info.value.reason == "policy"
    assert [c.name for c in info.value.checks] == ["policy.mrsigner.allow"]


def test_sgx_refused_today_stale_collateral(corpora: Path) -> None:
    with pytest.raises(Refusal) as info:
        steward(policy=PERMISSIVE).attest(_csr(corpora, SGX_CSR))
    assert info.value.status == 403 and info.value.reason == "expired"
    assert "expired" in info.value.detail
