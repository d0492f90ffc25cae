"""Freshness beyond Enarx: GET /challenge nonces (stateless, expiring), bound into report_data with the key."""

from __future__ import annotations

import concurrent.futures
import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from _helpers import anchor_file, snp_csr, split_chain, steward, steward_process
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from enarx.attestation import freshness
from enarx.attestation.freshness import ChallengeIssuer, FreshnessError, require_fresh
from enarx.steward.app import CT_PKCS10, create_app
from enarx.steward.issuer import read_claims


@pytest.fixture(scope="module")
def anchor(tmp_path_factory):
    _, sim = snp_csr()
    return anchor_file(tmp_path_factory.mktemp("anchor"), sim)


def _client(anchor, **kw) -> TestClient:
    app_steward = steward(anchors=[anchor])
    for name, value in kw.items():
        setattr(app_steward.config, name, value)
    return TestClient(create_app(app_steward))


def _post(client: TestClient, csr: bytes) -> httpx.Response:
    return client.post("/", content=csr, headers={"content-type": CT_PKCS10})


def _nonce(client: TestClient) -> bytes:
    resp = client.get("/challenge")
    assert resp.status_code == 200 and resp.headers["cache-control"] == "no-store"
    doc = resp.json()
    assert doc["binding"] == "enarx-report-data-v1"
    assert datetime.fromisoformat(doc["expires"]) > datetime.now(UTC)
    return freshness.decode(doc["nonce"])


def test_nonce_round_trip_tamper_and_expiry() -> None:
    issuer = ChallengeIssuer.generate(timedelta(seconds=60))
    issued = issuer.issue()
    assert len(issued.nonce) == freshness.NONCE_SIZE and issuer.check(issued.nonce) == issued.expires
    assert issuer.issue().nonce != issued.nonce  # random part
    for position in (0, 3, 12, freshness.NONCE_SIZE - 1):  # version, expiry, random, MAC
        forged = bytearray(issued.nonce)
        forged[position] ^= 1
        with pytest.raises(FreshnessError) as caught:
            issuer.check(bytes(forged))
        assert caught.value.reason == "challenge-invalid"
    with pytest.raises(FreshnessError, match="MAC") as caught:
        ChallengeIssuer.generate().check(issued.nonce)  # another server's key
    with pytest.raises(FreshnessError, match="expired") as caught:
        issuer.check(issued.nonce, now=issued.expires)
    assert caught.value.reason == "challenge-expired"
    old = issuer.issue(now=datetime.now(UTC) - timedelta(seconds=61))
    with pytest.raises(FreshnessError, match="fetch a new one"):
        issuer.check(old.nonce)
    assert require_fresh(issuer, None, required=False) is None
    with pytest.raises(FreshnessError, match="requires|required") as caught:
        require_fresh(issuer, None, required=True)
    assert caught.value.reason == "challenge-required"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2 * freshness.NONCE_SIZE))
def test_no_forged_nonce_is_accepted(data: bytes) -> None:
    with pytest.raises(FreshnessError):
        ChallengeIssuer(b"k" * 32).check(data)


def test_bound_nonce_is_certified_and_plain_enarx_csrs_still_work(anchor) -> None:
    client = _client(anchor)
    csr, _ = snp_csr(nonce=_nonce(client))
    resp = _post(client, csr)
    assert resp.status_code == 200, resp.text
    assert read_claims(split_chain(resp.content)[1])["tee"] == "sev-snp"
    plain, _ = snp_csr()  # Enarx layout: no nonce, report_data = SHA-384(SPKI)
    assert _post(client, plain).status_code == 200


def test_required_challenge_refuses_csrs_without_a_valid_binding(anchor) -> None:
    client = _client(anchor, require_challenge=True)
    plain, _ = snp_csr()
    body = _post(client, plain).json()
    assert body["status"] == 403 and body["reason"] == "challenge-required"
    assert "GET /challenge" in body["detail"] and body["checks"][0]["name"] == "steward.challenge"

    nonce = _nonce(client)
    unbound, _ = snp_csr(nonce=nonce, bound_nonce=None)  # carries the nonce, report_data binds only the key
    body = _post(client, unbound).json()
    assert body["reason"] == "binding" and "nonce" in body["checks"][0]["detail"]
    other, _ = snp_csr(nonce=nonce, bound_nonce=_nonce(client))  # binds a different nonce than it carries
    assert _post(client, other).json()["reason"] == "binding"

    stranger = ChallengeIssuer.generate().issue().nonce
    body = _post(client, snp_csr(nonce=stranger)[0]).json()
    assert body["reason"] == "challenge-invalid" and "not issued by this server" in body["detail"]

    stale = client.app.state.steward.config.challenges.issue(now=datetime.now(UTC) - timedelta(hours=1)).nonce
    body = _post(client, snp_csr(nonce=stale)[0]).json()
    assert body["reason"] == "challenge-expired" and "expired at" in body["detail"]

    good, _ = snp_csr(nonce=nonce)
    assert _post(client, good).status_code == 200


def test_two_workers_accept_each_others_nonces(anchor) -> None:
    """Nonces are stateless: whichever worker answers GET /challenge, either accepts the CSR."""
    proc, port = steward_process("--generate-ca", "challenge.test", "--workers", "2", "--require-challenge",
                                 "--insecure-trust-anchor", str(anchor))
    try:
        url = f"http://127.0.0.1:{port}/"

        def attest(_: int) -> int:
            with httpx.Client(timeout=60) as first:  # one connection for the nonce …
                for _ in range(100):
                    try:
                        nonce = freshness.decode(first.get(url + "challenge").json()["nonce"])
                        break
                    except httpx.TransportError:
                        import time

                        time.sleep(0.05)
            with httpx.Client(timeout=60) as second:  # … another for the CSR
                return second.post(url, content=snp_csr(nonce=nonce)[0],
                                   headers={"content-type": CT_PKCS10}).status_code

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(attest, range(24)))
        assert statuses == [200] * 24
        issued = set()
        for _ in range(400):  # each worker counts its own decisions: two different totals = both served
            text = httpx.get(url + "metrics").text
            found = re.search(r'steward_decisions_total\{outcome="issued",reason="ok",tee="sev-snp"\} ([\d.]+)', text)
            issued.add(float(found.group(1)) if found else 0.0)
            if len(issued) == 2:  # under load the kernel may hand many connections in a row to one worker
                break
        assert len(issued) == 2 and sum(issued) == 24, issued
    finally:
        proc.terminate()
        proc.communicate(timeout=20)
