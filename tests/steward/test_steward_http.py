"""HTTP behaviour: Starlette TestClient for fine-grained cases, a real uvicorn server for concurrency."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import httpx
import pytest
from _helpers import (
    CA,
    PERMISSIVE,
    SGX_AT,
    SGX_CSR,
    anchor_file,
    chains_to,
    make_csr,
    snp_csr,
    split_bundle,
    split_chain,
    steward,
)
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.testclient import TestClient

from enarx.attestation import der
from enarx.steward.app import CT_BUNDLE, CT_PKCS10, MAX_BODY, create_app
from enarx.steward.csr import OID_KVM, OID_SGX
from enarx.steward.issuer import OID_CLAIMS, read_claims
from enarx.steward.server import BackgroundServer

P256 = ec.SECP256R1()


@pytest.fixture(scope="module")
def snp(tmp_path_factory: pytest.TempPathFactory):
    csr, sim = snp_csr()
    return csr, anchor_file(tmp_path_factory.mktemp("anchor"), sim), sim


def _client(**kw) -> TestClient:
    return TestClient(create_app(steward(**kw)))


def _problem(resp: httpx.Response, status: int, reason: str) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body = resp.json()
    assert body["status"] == status and body["reason"] == reason and body["type"].endswith(reason)
    return body


def test_health_ca_metrics() -> None:
    c = _client()
    assert c.get("/").status_code == 200
    assert b"BEGIN CERTIFICATE" in c.get("/ca").content
    assert c.get("/ca", headers={"accept": "application/pkix-cert"}).content == CA.der
    c.post("/", content=b"x", headers={"content-type": CT_PKCS10})
    text = c.get("/metrics").text
    assert 'steward_decisions_total{outcome="refused",reason="malformed-csr",tee="none"} 1.0' in text


def test_bad_requests() -> None:
    c = _client()
    _problem(c.post("/", content=b"\x30\x03garbage", headers={"content-type": CT_PKCS10}), 400, "malformed-csr")
    _problem(c.post("/", content=b"hello", headers={"content-type": "text/plain"}), 415, "content-type")
    _problem(c.post("/", content=b"x" * (MAX_BODY + 1), headers={"content-type": CT_PKCS10}), 413, "too-large")
    key = ec.generate_private_key(P256)
    bad_sig = make_csr(key, [(OID_KVM, b"")], tamper=True)
    _problem(c.post("/", content=bad_sig, headers={"content-type": CT_PKCS10}), 400, "csr-signature")
    unknown = make_csr(key, [("1.3.6.1.4.1.58270.1.99", b"\x05\x00")])
    _problem(c.post("/", content=unknown, headers={"content-type": CT_PKCS10}), 400, "unknown-extension")
    _problem(c.post("/", content=make_csr(key), headers={"content-type": CT_PKCS10}), 401, "no-evidence")
    other_attr = make_csr(key, attributes=[der.seq(der.oid("1.2.840.113549.1.9.7"), der.set_of(der.utf8("pw")))])
    _problem(c.post("/", content=other_attr, headers={"content-type": CT_PKCS10}), 400, "malformed-csr")
    bad_sgx = make_csr(key, [(OID_SGX, der.seq(der.octet_string(b"q")))])
    _problem(c.post("/", content=bad_sgx, headers={"content-type": CT_PKCS10}), 400, "malformed-evidence")
    assert c.get("/").status_code == 200  # still serving


def test_kvm_only_with_insecure_flag() -> None:
    key = ec.generate_private_key(P256)
    csr = make_csr(key, [(OID_KVM, b"")])
    body = _problem(_client().post("/", content=csr, headers={"content-type": CT_PKCS10}), 403, "kvm-refused")
    assert body["checks"][0]["name"] == "steward.insecure-accept-kvm"
    resp = _client(kvm=True).post("/", content=csr, headers={"content-type": CT_PKCS10})
    assert resp.status_code == 200
    ca, leaf = split_chain(resp.content)
    assert chains_to(leaf, ca) and read_claims(leaf)["insecure"] is True and read_claims(leaf)["tee"] == "kvm"


def test_simulated_snp_needs_insecure_anchor(snp) -> None:
    csr, anchor, _ = snp
    resp = _client().post("/", content=csr, headers={"content-type": CT_PKCS10})
    body = _problem(resp, 403, resp.json()["reason"])
    assert body["reason"] in ("chain", "untrusted-root")  # the simulator's ASK/ARK are unknown
    assert any(not c["passed"] for c in body["checks"])
    resp = _client(anchors=[anchor]).post("/", content=csr, headers={"content-type": CT_PKCS10})
    assert resp.status_code == 200, resp.text
    ca, leaf = split_chain(resp.content)
    assert ca.public_bytes(__import__("cryptography").hazmat.primitives.serialization.Encoding.DER) == CA.der
    assert chains_to(leaf, CA.cert)
    claims = read_claims(leaf)
    assert claims["tee"] == "sev-snp" and claims["test_anchor"] is True and claims["insecure"] is True
    assert claims["measurements"]["measurement"] and claims["tcb_status"]
    assert leaf.extensions.get_extension_for_oid(__import__("cryptography").x509.ObjectIdentifier(OID_CLAIMS))


def test_snp_binding_and_key_type(tmp_path: Path, snp) -> None:
    _, anchor, _ = snp
    c = _client(anchors=[anchor])
    other = ec.generate_private_key(ec.SECP384R1())
    csr, _ = snp_csr(bind=other)
    body = _problem(c.post("/", content=csr, headers={"content-type": CT_PKCS10}), 403, "binding")
    assert [x["name"] for x in body["checks"]] == ["binding.report-data"]
    csr256, _ = snp_csr(key=ec.generate_private_key(P256))
    _problem(c.post("/", content=csr256, headers={"content-type": CT_PKCS10}), 400, "key-type")


def test_bundle(corpora: Path, snp) -> None:
    sgx = (corpora / "steward-csr" / SGX_CSR).read_bytes()
    c = TestClient(create_app(steward(policy=PERMISSIVE, at=SGX_AT)))
    resp = c.post("/", content=der.seq(sgx, sgx), headers={"content-type": CT_BUNDLE})
    assert resp.status_code == 200
    chain, issued = split_bundle(resp.content)
    assert len(chain) == 1 and len(issued) == 2 and all(chains_to(x, CA.cert) for x in issued)
    resp = c.post("/", content=der.seq(sgx, snp[0]), headers={"content-type": CT_BUNDLE})
    body = _problem(resp, 403, "chain")
    assert body["index"] == 1 and body["detail"].startswith("CSR #1")


def test_real_uvicorn_concurrent(corpora: Path) -> None:
    sgx = (corpora / "steward-csr" / SGX_CSR).read_bytes()
    server = BackgroundServer(create_app(steward(policy=PERMISSIVE, at=SGX_AT))).start()
    try:
        url = f"http://127.0.0.1:{server.port}/"
        bodies = [(sgx, CT_PKCS10, 200), (b"junk", CT_PKCS10, 400), (sgx, "text/plain", 415),
                  (b"\x00" * (MAX_BODY + 10), CT_PKCS10, 413)] * 8

        def post(item):
            body, ctype, _ = item
            with httpx.Client(timeout=30) as client:
                return client.post(url, content=body, headers={"content-type": ctype}).status_code

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            got = list(pool.map(post, bodies))
        assert got == [b[2] for b in bodies]
        with httpx.Client() as client:
            assert client.get(url).status_code == 200
            resp = client.post(url, content=sgx, headers={"content-type": CT_PKCS10})
            ca, leaf = split_chain(resp.content)
            assert chains_to(leaf, ca) and read_claims(leaf)["policy"] == "test"
            assert "steward_decisions_total" in client.get(url + "metrics").text
    finally:
        server.stop()
