"""Limits a hostile client meets: body size (413 before the body is read), CRL caps at decode, and a bounded
decision pool off the event loop (503 + Retry-After when full). Real servers, real sockets."""

from __future__ import annotations

import socket
import subprocess
import threading

import httpx
import pytest
from _helpers import crl_heavy_csr, many_entry_crl, steward
from _helpers import steward_process as start_steward
from starlette.testclient import TestClient

from enarx.steward.app import CT_PKCS10, MAX_BODY, DecisionPool, create_app
from enarx.steward.csr import MAX_CRL_BYTES, MAX_CRL_ENTRIES, MAX_CRL_ENTRIES_TOTAL, CsrError, decode_csr
from enarx.steward.server import BackgroundServer

BIG = 32 << 20


@pytest.fixture(scope="module")
def steward_process():
    """The real ``enarx steward serve`` on an ephemeral loopback port."""
    proc, port = start_steward("--generate-ca", "limits.test")
    try:
        yield port
    finally:
        proc.terminate()
        proc.communicate(timeout=20)


def _problem(resp: httpx.Response, status: int, reason: str) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body = resp.json()
    assert body["reason"] == reason
    return body


def test_oversized_body_is_answered_413_before_it_is_sent(steward_process) -> None:
    """Only 64 KiB of a declared 32 MiB are ever sent: the 413 must come anyway, and the connection be usable
    to read it (no reset)."""
    with socket.create_connection(("127.0.0.1", steward_process), timeout=30) as sock:
        sock.sendall(f"POST / HTTP/1.1\r\nHost: steward\r\nContent-Type: {CT_PKCS10}\r\n"
                     f"Content-Length: {BIG}\r\n\r\n".encode() + b"\x00" * (64 << 10))
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 "), head
    assert b"application/problem+json" in head.lower()
    assert b'"reason":"too-large"' in body and str(BIG).encode() in body


def test_oversized_body_from_real_clients_gets_413_not_a_reset(steward_process) -> None:
    url = f"http://127.0.0.1:{steward_process}/"
    with httpx.Client(timeout=60) as client:
        body = _problem(client.post(url, content=b"\x00" * BIG, headers={"content-type": CT_PKCS10}), 413,
                        "too-large")
        assert str(BIG) in body["detail"]

        def chunks():  # no Content-Length: refused once the running total passes the limit
            for _ in range(32):
                yield b"\x00" * (1 << 20)

        _problem(client.post(url, content=chunks(), headers={"content-type": CT_PKCS10}), 413, "too-large")
        assert client.get(url).status_code == 200
    curl = subprocess.run(["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "-H", f"content-type: {CT_PKCS10}",
                           "--data-binary", "@-", url], input=b"\x00" * BIG, capture_output=True, timeout=60)
    assert curl.stdout.endswith(b"\n413") and b'"too-large"' in curl.stdout, curl.stderr


def test_crl_with_42000_entries_is_refused_before_it_is_parsed() -> None:
    """Issue 8's CSR (one 42,000-entry CRL, ~0.9 MB) is over the body limit; whatever the limit, the CRL byte
    cap refuses it at decode without parsing an entry."""
    csr = crl_heavy_csr([many_entry_crl(42_000)])
    resp = TestClient(create_app(steward())).post("/", content=csr, headers={"content-type": CT_PKCS10})
    _problem(resp, 413, "too-large")
    with pytest.raises(CsrError, match=f"larger than the Steward's limit of {MAX_CRL_BYTES}") as caught:
        decode_csr(csr)
    assert caught.value.reason == "crl-too-large"
    just_over = crl_heavy_csr([many_entry_crl(MAX_CRL_ENTRIES + 1)])
    assert len(just_over) <= MAX_BODY  # within the body limit: the entry cap refuses it
    body = _problem(TestClient(create_app(steward())).post("/", content=just_over,
                                                            headers={"content-type": CT_PKCS10}), 400, "crl-too-large")
    assert f"{MAX_CRL_ENTRIES + 1} entries is more than" in body["detail"]


def test_crl_entry_caps_per_crl_and_in_all() -> None:
    with pytest.raises(CsrError, match=f"{MAX_CRL_ENTRIES + 1} entries is more than"):
        decode_csr(crl_heavy_csr([many_entry_crl(MAX_CRL_ENTRIES + 1)]))
    per = MAX_CRL_ENTRIES_TOTAL // 3 + 1
    with pytest.raises(CsrError, match=f"more than {MAX_CRL_ENTRIES_TOTAL} entries in all") as caught:
        decode_csr(crl_heavy_csr([many_entry_crl(per), many_entry_crl(per), many_entry_crl(per)]))
    assert caught.value.reason == "crl-too-large" and caught.value.status == 400
    decode_csr(crl_heavy_csr([many_entry_crl(100)]))  # a CRL within the caps decodes


class _Gate:
    """A Steward stand-in whose decisions wait until released, recording the thread that ran them."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Semaphore(0)
        self.threads: list[str] = []
        self.config = steward().config

    def attest(self, body: bytes):
        self.threads.append(threading.current_thread().name)
        self.entered.release()
        self.release.wait(30)
        return steward(kvm=True).attest(body)


def test_full_pool_answers_503_with_retry_after_and_decides_off_the_loop() -> None:
    from _helpers import make_csr
    from cryptography.hazmat.primitives.asymmetric import ec

    from enarx.steward.csr import OID_KVM

    gate = _Gate()
    server = BackgroundServer(create_app(gate, pool=DecisionPool(threads=1, queue=1, retry_after=7))).start()
    url = f"http://127.0.0.1:{server.port}/"
    csr = make_csr(ec.generate_private_key(ec.SECP256R1()), [(OID_KVM, b"")])
    results: list[int] = []

    def post() -> None:
        with httpx.Client(timeout=60) as client:
            results.append(client.post(url, content=csr, headers={"content-type": CT_PKCS10}).status_code)

    try:
        first, second = threading.Thread(target=post), threading.Thread(target=post)
        first.start()
        assert gate.entered.acquire(timeout=30)  # one deciding …
        second.start()
        for _ in range(200):  # … one queued (the pool's counter is the truth; wait until it holds both)
            if server.server.config.app.state.pool.taken == 2:
                break
            threading.Event().wait(0.02)
        with httpx.Client(timeout=30) as client:
            busy = client.post(url, content=b"\x00" * (200 << 10), headers={"content-type": CT_PKCS10})
            body = _problem(busy, 503, "busy")
            assert busy.headers["retry-after"] == "7" and "retry in 7 s" in body["detail"]
            assert client.get(url).status_code == 200  # the event loop still answers while decisions wait
        gate.release.set()
        first.join(30)
        second.join(30)
        assert results == [200, 200]
        assert gate.threads and all(name.startswith("steward-decide") for name in gate.threads)
    finally:
        gate.release.set()
        server.stop()
