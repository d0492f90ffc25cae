"""Every SGX/TDX row of the shared corpus (cases.tsv) through :func:`verify_quote`.

Genuine rows must verify and carry the TCB status / debug claim that makes the expected verdict obvious;
failed rows must raise the typed error with the row's reason token. The corpus is never copied here.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from _corpus import CORPORA, HAVE_CORPUS, NO_CORPUS, corpus_rows
from _verify import verify_quote

from enarx.attestation import roots
from enarx.attestation.anchors import TrustAnchors
from enarx.attestation.collateral import load_collateral as _load
from enarx.attestation.model import (
    AttestationError,
    CollateralSet,
    MalformedEvidence,
    TcbStatus,
    Tee,
    VerificationError,
)

pytestmark = [pytest.mark.corpus, pytest.mark.skipif(not HAVE_CORPUS, reason=NO_CORPUS)]

TEST_ANCHOR = "sgx/qvl-synthetic/trusted_root_ca.pem"
ROWS = corpus_rows("sgx", "tdx")


def load_collateral(paths: list[str]) -> CollateralSet:
    """Endorsement files through the project's own loader (no fallback: a loader regression must fail)."""
    return _load([str(CORPORA / p) for p in paths])


def builtin_anchors() -> TrustAnchors:
    return roots.builtin_anchors()


def run_row(row: dict[str, str]):
    quote = (CORPORA / row["evidence"]).read_bytes()
    endorsements = row["endorsements"].split()
    mutate = row["mutate"]
    if mutate.startswith("flip:"):
        off = int(mutate[5:])
        quote = quote[:off] + bytes([quote[off] ^ 0x01]) + quote[off + 1 :]
    elif mutate.startswith("truncate:"):
        quote = quote[: int(mutate[9:])]
    elif mutate.startswith("swap-endorsement:"):
        old, new = mutate[len("swap-endorsement:") :].split("=>")
        endorsements = [new if e == old else e for e in endorsements]
    anchors = builtin_anchors()
    if "test-anchor" in row["case"]:
        # the test root is trusted only because the caller configured it explicitly
        anchors = roots.builtin_anchors(roots.load_anchor_file(CORPORA / TEST_ANCHOR))
    endorsements = [e for e in endorsements if not e.startswith("intel-ca/") and e != TEST_ANCHOR]
    at = datetime.fromisoformat(row["at"])
    return verify_quote(quote, load_collateral(endorsements), at, anchors)


EXPECTED_STATUS = {
    "tcb-outofdate": {TcbStatus.OUT_OF_DATE, TcbStatus.OUT_OF_DATE_CONFIGURATION_NEEDED},
    "tcb-needs-config": {TcbStatus.CONFIGURATION_NEEDED, TcbStatus.CONFIGURATION_AND_SW_HARDENING_NEEDED},
    "tcb-no-level": {TcbStatus.NOT_SUPPORTED},
}


@pytest.mark.parametrize("row", [r for r in ROWS if r["expect"] in ("trusted", "rejected")], ids=lambda r: r["case"])
def test_genuine_rows_verify(row):
    claims, checks, warnings = run_row(row)
    assert claims.tee == (Tee.SGX if row["format"] == "sgx" else Tee.TDX)
    assert all(c.passed for c in checks if c.name != "tcb-level" and c.name != "tdx-module"), checks
    assert len(claims.report_data) == 64
    assert claims.collateral_expiry is not None
    assert claims.collateral_expiry > datetime.fromisoformat(row["at"])
    if row["expect"] == "trusted":
        assert not claims.debug
        if "no-tcb-collateral" in row["notes"]:
            assert claims.tcb_status == TcbStatus.UNKNOWN
            assert any("TCB" in w for w in warnings)
        else:
            assert claims.tcb_status == TcbStatus.UP_TO_DATE, claims.tcb_status
    elif row["reason"] == "debug":
        assert claims.debug is True
        assert claims.tcb_status == TcbStatus.UP_TO_DATE
    else:
        assert claims.tcb_status in EXPECTED_STATUS[row["reason"]], claims.tcb_status
        assert not claims.debug
        if row["reason"] == "tcb-no-level":
            assert any(not c.passed and "tcb-no-level" in c.detail for c in checks)
    if "test-anchor" in row["case"]:
        assert any("extra trust anchor" in w for w in warnings)
    else:
        assert not any("extra trust anchor" in w for w in warnings)


@pytest.mark.parametrize("row", [r for r in ROWS if r["expect"] == "failed"], ids=lambda r: r["case"])
def test_failed_rows_raise(row):
    expected = MalformedEvidence if row["reason"] == "parse" else VerificationError
    with pytest.raises(expected) as info:
        run_row(row)
    assert info.value.reason == row["reason"], str(info.value)
    if row["reason"] == "expired":
        assert "expired" in str(info.value)


def _row(case: str) -> dict[str, str]:
    for r in ROWS:
        if r["case"] == case:
            return dict(r)
    pytest.skip(f"corpus row {case} not present")


def test_phala_sgx_advisories_and_claims():
    claims, checks, _ = run_row(_row("sgx-phala"))
    assert claims.tcb_status == TcbStatus.CONFIGURATION_AND_SW_HARDENING_NEEDED
    assert list(claims.advisory_ids) == ["INTEL-SA-00289", "INTEL-SA-00615"]
    assert claims.fmspc.hex() == "00a067110000"
    assert set(claims.measurements) == {"mrenclave"} and set(claims.signer) == {"mrsigner"}
    assert {"isv_svn", "isv_prodid", "pce_svn", "qe_svn"} <= set(claims.svns)
    assert claims.qe_tcb_status is TcbStatus.UP_TO_DATE
    names = [c.name for c in checks]
    assert names.index("attestation-key-signature") < names.index("qe-report-binding") < names.index(
        "qe-report-signature") < names.index("pck-chain.anchor") < names.index("tcb-level")


def test_steward_outofdate_advisories():
    claims, _, warnings = run_row(_row("sgx-steward-xeon-2023"))
    assert list(claims.advisory_ids) == ["INTEL-SA-00586", "INTEL-SA-00614", "INTEL-SA-00615", "INTEL-SA-00657"]
    assert any("QE identity" in w for w in warnings)


def test_tdx_claims_shape():
    claims, _, _ = run_row(_row("tdx-google-v5"))
    for key in ("mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3", "mrconfigid", "mrowner", "mrownerconfig", "mrservicetd"):
        assert len(bytes.fromhex(claims.measurements[key])) == 48
    assert claims.td_version == "1.5"
    assert claims.tee_tcb_svn.hex().startswith("0b01")
    assert claims.tdx_module_tcb_status is TcbStatus.UP_TO_DATE
    claims, _, _ = run_row(_row("tdx-phala-v4"))
    assert "mrservicetd" not in claims.measurements


def test_expired_message_names_item_and_time():
    with pytest.raises(VerificationError) as info:
        run_row(_row("tdx-phala-v4-at-today"))
    assert info.value.reason == "expired"
    assert "2025-07-19" in str(info.value)
    assert info.value.checks and not info.value.checks[-1].passed


def test_padding_after_quote_is_tolerated_but_cut_signature_is_not():
    row = _row("tdx-google-v4-cos113")
    quote = (CORPORA / row["evidence"]).read_bytes()
    from enarx.attestation.intel.abi import parse_quote

    assert parse_quote(quote[:4935]).length == 4935
    with pytest.raises(MalformedEvidence, match="signature data|certification data"):
        parse_quote(quote[:4934])


def test_real_root_only_refuses_test_pki_quote():
    row = _row("sgx-qvl-synthetic-test-anchor")
    row["case"] = "sgx-qvl-synthetic-real-root"  # same files, but no extra anchor
    with pytest.raises(VerificationError) as info:
        run_row(row)
    assert info.value.reason == "untrusted-root"


def test_swapped_collateral_is_missing_collateral():
    """Collateral of another platform does not apply: the verdict names what is missing for this one."""
    from enarx.attestation.verifier import Verifier

    row = _row("sgx-phala")
    at = datetime.fromisoformat(row["at"])
    verdict = Verifier().verify((CORPORA / row["evidence"]).read_bytes(),
                                load_collateral(["tdx/phala-v4/collateral.json"]), at=at)
    assert (verdict.status, verdict.reason) == ("rejected", "missing-collateral")
    assert any("no SGX TCB info for FMSPC 00a067110000" in w for w in verdict.warnings)
    row = _row("tdx-phala-v4")
    at = datetime.fromisoformat(row["at"])
    verdict = Verifier().verify((CORPORA / row["evidence"]).read_bytes(), load_collateral(
        ["tdx/google-v5/tcbinfo.json", "tdx/phala-v4/collateral.json#tcb_info_issuer_chain"]), at=at)
    assert verdict.status == "rejected"
    assert any("no TDX TCB info for FMSPC b0c06f000000 (supplied: TDX 90c06f000000)" in w for w in verdict.warnings)


def test_tcb_info_signed_bytes_are_exact():
    """A whitespace change inside the signed tcbInfo member breaks its signature."""
    row = _row("sgx-steward-xeon-2023")
    cs = load_collateral([e for e in row["endorsements"].split() if not e.startswith("intel-ca/")])
    name, raw = cs.json_documents[0]
    cs.json_documents[0] = (name, raw.replace(b'"version":3', b'"version": 3', 1))
    at = datetime.fromisoformat(row["at"])
    with pytest.raises(VerificationError) as info:
        verify_quote((CORPORA / row["evidence"]).read_bytes(), cs, at, builtin_anchors())
    assert info.value.reason == "signature"


def test_no_anchor_is_untrusted_root():
    row = _row("tdx-trustee-azure")
    at = datetime.fromisoformat(row["at"])
    with pytest.raises(AttestationError) as info:
        verify_quote((CORPORA / row["evidence"]).read_bytes(), CollateralSet(), at, TrustAnchors())
    assert info.value.reason == "untrusted-root"


def test_abi_round_trip_of_every_corpus_quote():
    """parse → build gives back the exact bytes (padding excluded)."""
    from enarx.attestation.intel import abi

    quotes = sorted({r["evidence"] for r in ROWS})
    assert quotes
    for path in quotes:
        data = (CORPORA / path).read_bytes()
        q = abi.parse_quote(data)
        rebuilt = abi.build_quote(q.header, q.body.raw, q.signature, q.attestation_key, q.qe, q.body_type)
        assert rebuilt == data[: q.length], path
        assert abi.looks_like_quote(data)
