"""``enarx attest`` through click: exit statuses 0/1/2/3, JSON output, show, simulate, one-line errors."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from _corpus import CORPORA, HAVE_CORPUS, NO_CORPUS
from click.testing import CliRunner

from enarx.cli.attest import attest


def run(*args: str):
    return CliRunner().invoke(attest, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def simdir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "snp"
    result = run("simulate", "snp", "--out", str(out), "--report-data", "aa" * 64, "--measurement", "bb" * 48)
    assert result.exit_code == 0, result.output
    return out


def verify(simdir: Path, *extra: str):
    return run("verify", str(simdir / "report.bin"), "--collateral", str(simdir), *extra)


def test_simulated_evidence_needs_an_explicit_anchor(simdir):
    result = verify(simdir)
    assert result.exit_code == 3
    assert "untrusted-root" in result.output
    trusted = verify(simdir, "--trust-anchor", str(simdir / "root.pem"))
    assert trusted.exit_code == 0, trusted.output
    assert "trusted (ok)" in trusted.output
    assert "trust anchor" in trusted.stderr


def test_json_lists_claims_and_every_check(simdir):
    result = verify(simdir, "--trust-anchor", str(simdir / "root.pem"), "--json")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["status"] == "trusted" and doc["claims"]["tee"] == "sev-snp"
    assert doc["claims"]["report_data"] == "aa" * 64
    assert doc["claims"]["measurements"]["measurement"] == "bb" * 48
    names = {c["name"] for c in doc["checks"]}
    assert {"snp.report-signature", "policy.debug", "policy.tcb-status"} <= names
    assert all(c["passed"] for c in doc["checks"])


def test_policy_rejection_exits_2_and_names_the_rule(simdir, tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text('[measurements.measurement]\nallow = ["' + "cc" * 48 + '"]\n')
    result = verify(simdir, "--trust-anchor", str(simdir / "root.pem"), "--policy", str(policy))
    assert result.exit_code == 2
    assert "policy.measurement.allow" in result.output and "bb" * 48 in result.output


def test_hex_and_base64_evidence(simdir, tmp_path):
    raw = (simdir / "report.bin").read_bytes()
    for name, text in (("r.hex", raw.hex()), ("r.b64", base64.b64encode(raw).decode())):
        path = tmp_path / name
        path.write_text(text + "\n")
        result = run("verify", str(path), "--collateral", str(simdir), "--trust-anchor", str(simdir / "root.pem"))
        assert result.exit_code == 0, result.output


def test_expired_at_a_later_time(simdir):
    result = verify(simdir, "--trust-anchor", str(simdir / "root.pem"), "--at", "2090-01-01T00:00:00Z")
    assert result.exit_code == 3
    assert "expired" in result.output


@pytest.mark.parametrize("args,needle", [
    (("verify", "/nonexistent/report.bin"), "cannot read evidence"),
    (("verify", "{report}", "--at", "yesterday"), "--at"),
    (("verify", "{report}", "--policy", "/nonexistent.toml"), "cannot read policy"),
    (("verify", "{report}", "--collateral", "/nonexistent"), "no such file"),
    (("verify", "{report}", "--trust-anchor", "/nonexistent.pem"), "--trust-anchor"),
    (("verify", "{report}", "--collateral", "{report}"), "not a certificate"),
])
def test_usage_errors_exit_1_with_one_line(simdir, args, needle):
    args = tuple(a.replace("{report}", str(simdir / "report.bin")) for a in args)
    result = run(*args)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and needle in lines[0], result.stderr


def test_malformed_evidence_exits_3(tmp_path):
    path = tmp_path / "junk.bin"
    path.write_bytes(b"\x00" * 100)
    result = run("verify", str(path))
    assert result.exit_code == 3 and "parse" in result.output


def test_show(simdir):
    result = run("show", str(simdir / "report.bin"))
    assert result.exit_code == 0
    assert "format: snp (1184 bytes)" in result.output
    assert "measurement: " + "bb" * 48 in result.output
    doc = json.loads(run("show", str(simdir / "report.bin"), "--json").output)
    assert doc["structure"]["report_data"] == "aa" * 64


def test_simulate_options(tmp_path):
    out = tmp_path / "o"
    result = run("simulate", "snp", "--out", str(out), "--debug", "--product", "Turin", "--version", "5",
                 "--tcb", "fmc=1,bl=2,tee=3,snp=4,ucode=5", "--vmpl", "2", "--signing-key", "vlek")
    assert result.exit_code == 0, result.output
    doc = json.loads(run("verify", str(out / "report.bin"), "--collateral", str(out), "--trust-anchor",
                         str(out / "root.pem"), "--json").output)
    assert doc["status"] == "rejected" and doc["reason"] == "debug"
    claims = doc["claims"]
    assert claims["platform"]["product"] == "Turin" and claims["platform"]["vmpl"] == 2
    assert (claims["svns"]["fmc"], claims["svns"]["bootloader"], claims["svns"]["microcode"]) == (1, 2, 5)
    bad = run("simulate", "snp", "--out", str(out), "--tcb", "nonsense")
    assert bad.exit_code == 2 and bad.stderr.startswith("Error: ")  # a usage error


@pytest.mark.corpus
@pytest.mark.skipif(not HAVE_CORPUS, reason=NO_CORPUS)
def test_corpus_row_via_cli():
    base = CORPORA / "sev-snp"
    common = ["--collateral", str(base / "milan-virtee" / "vcek.der"), "--collateral",
              str(base / "ca" / "ask_ark_milan.pem"), "--collateral", str(base / "crl" / "ark_milan.crl.der")]
    ok = run("verify", str(base / "milan-virtee" / "report.bin"), *common, "--at", "2023-04-04T19:23:43Z")
    assert ok.exit_code == 0, ok.output
    debug = run("verify", str(base / "milan-go-sev-guest" / "report.bin"), "--collateral",
                str(base / "milan-go-sev-guest" / "vcek.der"), *common[2:], "--at", "2022-09-25T00:55:28Z")
    assert debug.exit_code == 2
    today = run("verify", str(base / "milan-virtee" / "report.bin"), *common)
    assert today.exit_code == 3 and "expired" in today.output


@pytest.mark.parametrize("tee", ["sgx", "tdx"])
def test_simulate_intel_through_the_same_cli(tmp_path, tee):
    pytest.importorskip("enarx.attestation.simulate.intel", reason="SGX/TDX simulator not available")
    out = tmp_path / tee
    result = run("simulate", tee, "--out", str(out), "--report-data", "0011", "--debug")
    assert result.exit_code == 0, result.output
    quote = next(p for p in out.iterdir() if p.name.startswith("quote"))
    plain = run("verify", str(quote), "--collateral", str(out))
    assert plain.exit_code == 3, plain.output
    doc = json.loads(run("verify", str(quote), "--collateral", str(out), "--trust-anchor", str(out / "root.pem"),
                         "--json").output)
    assert (doc["status"], doc["reason"]) == ("rejected", "debug")
    assert doc["claims"]["report_data"] == "0011" + "00" * 62


def test_help_points_to_the_policy_document():
    from enarx.cli.steward import steward

    for group, args in ((attest, ["verify", "--help"]), (steward, ["serve", "--help"])):
        out = CliRunner().invoke(group, args).output
        assert "docs/policy.md" in " ".join(out.split()), out
    out = " ".join(CliRunner().invoke(steward, ["serve", "--help"]).output.split())
    assert "--collateral DIR" in out


def test_simulate_pki_creates_reuses_and_writes_the_stewards_collateral(tmp_path):
    first = run("simulate", "pki", str(tmp_path / "sim"))
    assert first.exit_code == 0, first.output
    anchors = [line.split(": ", 1)[1] for line in first.stdout.splitlines() if line.startswith("anchor: ")]
    root = (tmp_path / "sim" / "intel" / "root.pem").read_bytes()
    again = run("simulate", "pki", str(tmp_path / "sim"), "--days", "2")
    assert again.exit_code == 0 and (tmp_path / "sim" / "intel" / "root.pem").read_bytes() == root  # reused
    names = {p.name for p in (tmp_path / "sim" / "collateral").iterdir()}
    assert {"sgx-qe-identity.json", "tdx-qe-identity.json", "root_ca.crl.der", "pck_platform.crl.der",
            "ark-milan.crl.der"} <= names
    # evidence simulated with --pki DIR verifies under the default policy with those anchors and collateral
    out = tmp_path / "tdx"
    assert run("simulate", "tdx", "--out", str(out), "--pki", str(tmp_path / "sim")).exit_code == 0
    quote = out / "quote.bin"
    trust = [x for a in anchors for x in ("--trust-anchor", a)]
    verdict = run("verify", str(quote), *trust, "--collateral", str(tmp_path / "sim" / "collateral"))
    assert verdict.exit_code == 0, verdict.output


def test_sgx_quote_with_only_a_trust_anchor_names_each_missing_item(tmp_path):
    """Finding 1 through the CLI: exit 2, every missing collateral item named (never 'failed')."""
    out = tmp_path / "sgx"
    assert run("simulate", "sgx", "--out", str(out)).exit_code == 0
    result = run("verify", str(out / "quote.bin"), "--trust-anchor", str(out / "root.pem"))
    assert result.exit_code == 2, result.output
    assert "rejected (missing-collateral)" in result.output
    for item in ("missing collateral: TCB info", "missing collateral: CRL", "missing collateral: QE identity"):
        assert item in result.output
    assert run("verify", str(out / "quote.bin"), "--trust-anchor", str(out / "root.pem"), "--collateral",
               str(out)).exit_code == 0


def test_a_collateral_file_that_does_not_load_is_warned_about(simdir, tmp_path):
    """A directory of collateral with a truncated download in it: the verdict stands on the rest, and the
    user is told which file was skipped (a silent skip would hide why a later verdict changes)."""
    import shutil

    collateral = tmp_path / "collateral"
    shutil.copytree(simdir, collateral)
    (collateral / "tcbinfo.json").write_text('{"tcbInfo": ')
    result = run("verify", str(simdir / "report.bin"), "--collateral", str(collateral), "--trust-anchor",
                 str(simdir / "root.pem"))
    assert result.exit_code == 0, result.output
    assert "warning: --collateral: skipped" in result.stderr and "tcbinfo.json" in result.stderr
