"""Every row of the shared corpus ``cases.tsv`` through the public entry point, as of its time.

Each row names evidence, endorsements, a verification instant, the expected verdict and its reason token;
derived rows apply a mutation (``flip:OFFSET``, ``truncate:LEN``, ``swap-endorsement:OLD=>NEW``) first.
Roots among the endorsements are passed as ordinary collateral, never as trust anchors, except where a
row says a root must be "explicitly configured" (then it goes through ``--trust-anchor`` semantics and the
verdict must warn).

Every row keeps its verdict, except one change the fail-closed defaults make on purpose: genuine evidence
given without collateral the default policy requires (a CRL where the vendor publishes one, Intel TCB info,
a QE identity) is *rejected* (``missing-collateral``, never ``failed``) naming what is missing, and is trusted
again under a policy that relaxes exactly those items — and each of them is needed.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from _corpus import CORPORA, HAVE_CORPUS, NO_CORPUS, corpus_rows
from cryptography import x509

from enarx.attestation import roots
from enarx.attestation.collateral import load_collateral
from enarx.attestation.policy import Policy
from enarx.attestation.verifier import parse_time, verify_evidence

pytestmark = [pytest.mark.corpus, pytest.mark.skipif(not HAVE_CORPUS, reason=NO_CORPUS)]

# which failed policy check stands for which missing collateral item
MISSING = {"policy.revocation": "crl", "policy.tcb-status": "tcb_info", "policy.collateral.qe-identity": "qe_identity"}
WORDS = {"crl": "CRL", "tcb_info": "TCB info", "qe_identity": "QE identity"}
# rows whose old verdict relied on an old default beyond collateral (stated here, relaxed explicitly)
EXTRA_RELAXATION = {"snp-milan-vlek-aws": "[snp]\nmax_vmpl = 1\n"}  # AWS runs the guest at VMPL 1


def mutated(row: dict[str, str]) -> tuple[bytes, list[str]]:
    evidence = (CORPORA / row["evidence"]).read_bytes()
    endorsements = row["endorsements"].split()
    mutation = row["mutate"].strip()
    if mutation.startswith("flip:"):
        offset = int(mutation[5:])
        evidence = evidence[:offset] + bytes([evidence[offset] ^ 1]) + evidence[offset + 1 :]
    elif mutation.startswith("truncate:"):
        evidence = evidence[: int(mutation[9:])]
    elif mutation.startswith("swap-endorsement:"):
        old, new = mutation.split(":", 1)[1].split("=>")
        assert old in endorsements, f"{row['case']}: {old} not among endorsements"
        endorsements = [new if e == old else e for e in endorsements]
    else:
        assert not mutation, f"unknown mutation {mutation!r}"
    return evidence, endorsements


def explicit_anchor(row: dict[str, str]) -> str | None:
    match = re.search(r"ONLY with (\S+) explicitly configured", row["notes"])
    return match.group(1) if match else None


def run_row(row: dict[str, str], at: datetime | None = None, policy: Policy | None = None):
    evidence, endorsements = mutated(row)
    anchor = explicit_anchor(row)
    extra = roots.load_anchor_file(CORPORA / anchor) if anchor else []
    collateral = load_collateral([CORPORA / e for e in endorsements if e != anchor])
    verdict = verify_evidence(evidence, collateral, at=at or parse_time(row["at"]), policy=policy,
                              anchors=roots.builtin_anchors(extra))
    return verdict, bool(extra)


def relaxing(items: set[str], row: dict[str, str]) -> Policy:
    listed = ", ".join(f'"{i}"' for i in sorted(items))
    return Policy.from_toml(f"allow_missing_collateral = [{listed}]\n" + EXTRA_RELAXATION.get(row["case"], ""))


def missing_items(verdict) -> set[str]:
    """The collateral items a ``missing-collateral`` rejection names (each check must say which)."""
    items = set()
    for check in verdict.checks:
        if not check.passed and check.reason == "missing-collateral":
            item = MISSING[check.name]
            assert WORDS[item] in check.detail, check
            items.add(item)
    return items


@pytest.mark.parametrize("row", corpus_rows(), ids=lambda r: r["case"])
def test_case_verdict(row):
    verdict, used_extra = run_row(row)
    failed = [f"{c.name}: {c.detail}" for c in verdict.checks if not c.passed]
    if row["expect"] == "trusted" and verdict.status == "rejected":
        # the one intended change: genuine, but collateral the default policy requires was not given
        assert verdict.reason == "missing-collateral", failed
        missing = missing_items(verdict)
        assert missing, failed
        relaxed, _ = run_row(row, policy=relaxing(missing, row))
        assert (relaxed.status, relaxed.reason) == ("trusted", "ok"), [c for c in relaxed.checks if not c.passed]
        for item in missing:  # every named item is needed: relaxing all the others is not enough
            partial, _ = run_row(row, policy=relaxing(missing - {item}, row))
            assert partial.status == "rejected" and item in missing_items(partial)
        verdict = relaxed
        failed = [f"{c.name}: {c.detail}" for c in verdict.checks if not c.passed]
    assert (verdict.status, verdict.reason) == (row["expect"], row["reason"]), failed
    if verdict.status == "trusted":
        assert verdict.claims is not None and not failed
    if verdict.status == "rejected":
        assert verdict.claims is not None and failed, "a rejection must name the failed rule"
    if verdict.status == "failed":
        assert verdict.claims is None
    if used_extra:
        assert any("trust anchor" in w for w in verdict.warnings)


def _earliest_expiry(endorsements: list[str]) -> tuple[datetime, str] | None:
    """Independently of the code under test: the earliest notAfter/nextUpdate among the endorsement files."""
    found = []
    for name in endorsements:
        data = (CORPORA / name).read_bytes()
        certs, crls = [], []
        if b"-----BEGIN CERTIFICATE" in data:
            certs = x509.load_pem_x509_certificates(data)
        elif data[:1] == b"\x30":
            try:
                crls = [x509.load_der_x509_crl(data)]
            except ValueError:
                certs = [x509.load_der_x509_certificate(data)]
        found += [(c.not_valid_after_utc, name) for c in certs]
        found += [(c.next_update_utc, name) for c in crls if c.next_update_utc]
    return min(found) if found else None


@pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning")
@pytest.mark.parametrize("row", [r for r in corpus_rows("snp") if r["expect"] != "failed"], ids=lambda r: r["case"])
def test_snp_case_at_today(row):
    """At today's date the same inputs are reported as expired exactly when an endorsement has expired."""
    now = datetime.now(UTC)
    verdict, _ = run_row(row, at=now)
    earliest = _earliest_expiry(mutated(row)[1])
    if earliest and earliest[0] < now:
        assert (verdict.status, verdict.reason) == ("failed", "expired")
        message = " ".join(c.detail for c in verdict.checks if not c.passed)
        assert "expired on" in message and earliest[0].date().isoformat() in message
    else:
        if verdict.reason == "missing-collateral":
            verdict, _ = run_row(row, at=now, policy=relaxing(missing_items(verdict), row))
        assert (verdict.status, verdict.reason) == (row["expect"], row["reason"])


def test_vlek_row_is_rejected_at_vmpl_1_by_default():
    """The AWS VLEK report runs at VMPL 1: the default policy (VMPL 0) rejects it, naming the rule."""
    row = next(r for r in corpus_rows("snp") if r["case"] == "snp-milan-vlek-aws")
    collateral = load_collateral([CORPORA / e for e in row["endorsements"].split()])
    verdict = verify_evidence((CORPORA / row["evidence"]).read_bytes(), collateral, at=parse_time(row["at"]),
                              policy=Policy.from_toml('allow_missing_collateral = ["crl"]'))
    assert (verdict.status, verdict.reason) == ("rejected", "policy")
    failed = [c for c in verdict.checks if not c.passed]
    assert [(c.name, c.expected, c.actual) for c in failed] == [("policy.snp.vmpl", "<= 0", "1")]
    assert verdict.claims.csp_id == "CN=cc-us-east-2.amazonaws.com"


def test_steward_csr_report_data_binds_the_csr_key():
    """Real Enarx keep CSR: its SNP report (in the evidence extension) binds the CSR key by SHA-384 of the SPKI."""
    from asn1crypto import core

    from enarx.attestation.binding import binding_check
    from enarx.attestation.snp.abi import parse_report
    from enarx.attestation.snp.verify import claims_from_report

    data = (CORPORA / "steward-csr" / "milan.csr").read_bytes()
    csr = x509.load_der_x509_csr(data) if data[:1] == b"\x30" else x509.load_pem_x509_csr(data)
    ext = csr.extensions.get_extension_for_oid(x509.ObjectIdentifier("1.3.6.1.4.1.58270.1.3"))
    evidence = core.Sequence.load(ext.value.value)
    claims = claims_from_report(parse_report(evidence[1].contents))
    assert binding_check(claims, csr.public_key()).passed
    other = x509.load_der_x509_certificate(roots.intel_sgx_root().der).public_key()
    assert not binding_check(claims, other).passed
