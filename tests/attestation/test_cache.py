"""Collateral cache against a loopback HTTP server standing in for AMD KDS / Intel PCS; bundles."""

from __future__ import annotations

import json
import tarfile
import threading
import urllib.parse
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from enarx.attestation.cache import CacheError, CollateralCache
from enarx.attestation.simulate.snp import simulate_snp
from enarx.attestation.verifier import Verifier

START = datetime(2025, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def sim():
    return simulate_snp(at=START, crl_next_update=START + timedelta(days=7))


@pytest.fixture
def kds(sim):
    routes: dict[str, tuple[bytes, dict[str, str]]] = {}
    hits: list[str] = []
    tcb = sim.parsed.reported_tcb
    query = urllib.parse.urlencode({"blSPL": tcb.bootloader, "teeSPL": tcb.tee, "snpSPL": tcb.snp,
                                    "ucodeSPL": tcb.microcode})
    routes[f"/vcek/v1/Milan/{sim.parsed.chip_id.hex()}?{query}"] = (sim.endorsement_cert, {})
    routes["/vcek/v1/Milan/cert_chain"] = (sim.chain_pem, {})
    routes["/vcek/v1/Milan/crl"] = (sim.crls[0], {})
    tcb_doc = json.dumps({"tcbInfo": {"nextUpdate": "2025-03-20T00:00:00Z", "fmspc": "00906ed50000"},
                          "signature": "00"}).encode()
    routes["/sgx/certification/v4/tcb?fmspc=00906ed50000"] = (
        tcb_doc, {"TCB-Info-Issuer-Chain": urllib.parse.quote(sim.chain_pem.decode())})

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            if self.path not in routes:
                self.send_response(404)
                self.end_headers()
                return
            body, headers = routes[self.path]
            self.send_response(200)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()
    server.server_close()


def make_cache(tmp_path, url, now):
    return CollateralCache(tmp_path / "cache", kds_url=url, pcs_url=url, clock=lambda: now[0], timeout=5)


def test_fetch_load_verify_offline(tmp_path, kds, sim):
    url, hits = kds
    now = [START + timedelta(days=1)]
    cache = make_cache(tmp_path, url, now)
    paths = cache.fetch_snp(sim.report)
    assert len(paths) == 3 and len(hits) == 3
    verdict = Verifier(anchors=sim.trust_anchors()).verify(sim.report, cache.load(), at=now[0])
    assert (verdict.status, verdict.reason) == ("trusted", "ok")
    assert verdict.claims.provenance.revocation.value == "full"
    # the same cache as a verifier's own store: the directory, or its exported bundle
    store = Verifier(anchors=sim.trust_anchors(), collateral=[cache.directory])
    assert store.verify(sim.report, at=now[0]).status == "trusted"
    bundle = cache.export_bundle(tmp_path / "bundle.tar.gz")
    assert Verifier(anchors=sim.trust_anchors(), collateral=[bundle]).verify(sim.report, at=now[0]).status == "trusted"

    # fresh items come from disk: no new requests
    cache.fetch_snp(sim.report)
    assert len(hits) == 3
    # after the CRL's nextUpdate, only the CRL is fetched again
    now[0] = START + timedelta(days=8)
    cache.fetch_snp(sim.report)
    assert hits[3:] == ["/vcek/v1/Milan/crl"]
    assert cache.refresh() == [cache.directory / "amd/Milan/vcek.crl.der"]


def test_http_errors_are_typed(tmp_path, kds, sim):
    url, _ = kds
    cache = make_cache(tmp_path, url, [START])
    with pytest.raises(CacheError, match="HTTP 404"):
        cache.fetch_snp(simulate_snp(product="Genoa").report)
    dead = CollateralCache(tmp_path / "c2", kds_url="http://127.0.0.1:9", timeout=2)
    with pytest.raises(CacheError):
        dead.fetch_snp(sim.report)


def test_intel_documents_and_issuer_chain_header(tmp_path, kds):
    url, _ = kds
    now = [START]
    cache = make_cache(tmp_path, url, now)
    path = cache.fetch(f"{url}/sgx/certification/v4/tcb?fmspc=00906ed50000", "intel/tcb.json", kind="intel-json",
                       chain_header="TCB-Info-Issuer-Chain")
    assert json.loads(path.read_bytes())["tcbInfo"]["fmspc"] == "00906ed50000"
    assert (cache.directory / "intel/tcb.json.issuer-chain.pem").read_bytes().startswith(b"-----BEGIN")
    loaded = cache.load()
    assert loaded.json_documents and loaded.certificates
    index = json.loads((cache.directory / "index.json").read_text())
    assert index[f"{url}/sgx/certification/v4/tcb?fmspc=00906ed50000"]["next_update"].startswith("2025-03-20")


def test_bundle_round_trip_and_tamper(tmp_path, kds, sim):
    url, _ = kds
    cache = make_cache(tmp_path, url, [START + timedelta(days=1)])
    cache.fetch_snp(sim.report)
    bundle = cache.export_bundle(tmp_path / "bundle.tar.gz")
    imported = CollateralCache.import_bundle(bundle, tmp_path / "airgap")
    verdict = Verifier(anchors=sim.trust_anchors()).verify(sim.report, imported.load(), at=START + timedelta(days=1))
    assert verdict.status == "trusted"

    # a modified file is refused
    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(bundle) as src, tarfile.open(bad, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()
            if member.name.endswith("vcek.crl.der"):
                data = data[:-1] + bytes([data[-1] ^ 1])
            member.size = len(data)
            import io

            dst.addfile(member, io.BytesIO(data))
    with pytest.raises(CacheError, match="SHA-256"):
        CollateralCache.import_bundle(bad, tmp_path / "x")
    (tmp_path / "junk").write_bytes(b"not a tarball")
    with pytest.raises(CacheError):
        CollateralCache.import_bundle(tmp_path / "junk", tmp_path / "y")


def test_cli_fetch_export_import(tmp_path, kds, sim):
    from click.testing import CliRunner

    from enarx.cli.attest import attest

    url, hits = kds
    report = tmp_path / "report.bin"
    report.write_bytes(sim.report)
    runner = CliRunner()
    result = runner.invoke(attest, ["cache", "fetch", str(report), "--dir", str(tmp_path / "c"), "--kds-url", url])
    assert result.exit_code == 0, result.output
    assert len(result.output.splitlines()) == 3 and len(hits) == 3
    bundle = tmp_path / "b.tar.gz"
    assert runner.invoke(attest, ["cache", "export", str(tmp_path / "c"), str(bundle)]).exit_code == 0
    assert runner.invoke(attest, ["cache", "import", str(bundle), str(tmp_path / "d")]).exit_code == 0
    root = tmp_path / "root.pem"
    root.write_bytes(sim.anchor_pem)
    verdict = runner.invoke(attest, ["verify", str(report), "--collateral", str(tmp_path / "d"), "--trust-anchor",
                                     str(root), "--at", (START + timedelta(days=1)).isoformat()])
    assert verdict.exit_code == 0, verdict.output
    bad = runner.invoke(attest, ["cache", "import", str(report), str(tmp_path / "e")])
    assert bad.exit_code == 1 and bad.stderr.startswith("Error: ")


def test_a_bundle_with_too_many_files_is_refused_without_reading_them_all(tmp_path, monkeypatch):
    """A gzip of millions of empty entries costs little to send: the reader stops counting at the limit."""
    import io

    from enarx.attestation import cache

    monkeypatch.setattr(cache, "MAX_BUNDLE_FILES", 50)
    bundle = tmp_path / "many.tar.gz"
    with tarfile.open(bundle, "w:gz") as tar:
        for i in range(200):
            info = tarfile.TarInfo(f"f{i}")
            tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(cache.CacheError, match="more than 50 files"):
        cache.read_bundle(bundle)
