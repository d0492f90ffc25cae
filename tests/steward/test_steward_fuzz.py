"""Hypothesis: CSR/evidence decoding only ever raises the typed CsrError (→ 4xx), never anything else."""

from __future__ import annotations

import pytest
from _helpers import SGX_AT, SGX_CSR, steward
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import corpora_dir
from enarx.steward.csr import EVIDENCE_OIDS, CsrError, decode_csr, decode_evidence
from enarx.steward.service import Refusal

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_DIR = corpora_dir()
SGX = (_DIR / "steward-csr" / SGX_CSR).read_bytes() if _DIR else b"\x30\x00"
MILAN = (_DIR / "steward-csr" / "milan.csr").read_bytes() if _DIR else b"\x30\x00"


@FUZZ
@given(st.binary(max_size=512))
def test_random_bytes(data: bytes) -> None:
    with pytest.raises(CsrError):
        decode_csr(data)


@FUZZ
@given(st.sampled_from(sorted(EVIDENCE_OIDS)), st.binary(max_size=512))
def test_random_evidence(oid: str, data: bytes) -> None:
    try:
        decode_evidence(oid, data, False)
    except CsrError as exc:
        assert 400 <= exc.status < 500


@FUZZ
@given(st.sampled_from([SGX, MILAN]), st.data())
def test_mutated_corpus_csrs(base: bytes, data: st.DataObject) -> None:
    body = bytearray(base)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(body) - 1))
        body[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(len(body) // 2, len(body)))
    try:
        steward(at=SGX_AT).attest(bytes(body[:cut]))
    except Refusal as refusal:
        assert 400 <= refusal.status < 500
