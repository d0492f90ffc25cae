"""Security review (uncommitted): attacks on the registry, the CLI's credentials and deploy, written as tests
that FAIL while the weakness is there."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import httpx
import pytest
from _fixtures import Drawbridge, issuer, pki
from _keeps import claims, keep_context

from enarx.cabundle import client_context
from enarx.drawbridge.client import RegistryClient
from enarx.drawbridge.content import CT_ENTRY, CT_WASM, Entry, format_content_digest
from enarx.drawbridge.names import Slug
from enarx.steward.issuer import CertificateAuthority

API = "/api/v0.1.0"


@pytest.fixture(scope="module")
def reg(pki, issuer, tmp_path_factory):
    work = tmp_path_factory.mktemp("review")
    steward_ca = CertificateAuthority.generate("Review Steward")
    (work / "steward-ca.pem").write_bytes(steward_ca.pem)
    (work / "store").mkdir()
    server = Drawbridge(pki, issuer, store=work / "store", keep_ca=work / "steward-ca.pem")
    token = issuer.mint("alice-sub")
    owner = RegistryClient(server.host, client_context(str(pki.ca_pem)), token)
    owner.register_user(Slug(server.host, "alice"), "alice-sub")
    owner.register_repo(Slug(server.host, "alice", "pub"), {"public": True})
    owner.register_repo(Slug(server.host, "alice", "priv"), {
        "public": False, "keeps": {"policy": {"tees": ["sev-snp"]}, "allow_insecure": False}})
    yield {"server": server, "token": token, "ca": pki.ca_pem, "steward_ca": steward_ca, "work": work,
           "base": f"https://{server.host}{API}/alice"}
    owner.close()
    server.stop()


def _put_tag(http: httpx.Client, url: str, root: Entry) -> httpx.Response:
    body = root.encode()
    return http.put(url, content=body, headers={
        "Content-Type": CT_ENTRY, "Content-Digest": format_content_digest(Entry.of(body, CT_ENTRY).digests)})


def test_large_object_with_false_sha384_and_sha512_is_refused(reg) -> None:
    """An object over 1 MiB is hashed only with the algorithms its Content-Digest names (sha-256): an entry
    whose sha-384/sha-512 name other bytes is stored and served as if true (the TDX binding is sha-384)."""
    data = os.urandom(2 << 20)
    true = Entry.of(data, CT_WASM)
    other = Entry.of(b"someone else's package", CT_WASM)
    forged = Entry({**true.digests, "sha-384": other.digests["sha-384"], "sha-512": other.digests["sha-512"]},
                   true.length, CT_WASM)
    with httpx.Client(verify=client_context(str(reg["ca"])), timeout=60,
                      headers={"Authorization": f"Bearer {reg['token']}"}) as http:
        url = f"{reg['base']}/pub/_tag/7.0.0"
        assert _put_tag(http, url, forged).status_code == 201
        response = http.put(url + "/tree", content=data, headers={
            "Content-Type": CT_WASM, "Content-Digest": format_content_digest({"sha-256": true.digests["sha-256"]})})
        served = http.head(url + "/tree")
    assert response.status_code == 400, (
        f"stored ({response.status_code}); served with Content-Digest {served.headers.get('content-digest')}")


def test_keep_refusal_does_not_disclose_a_private_tag(reg, tmp_path: Path) -> None:
    """Any keep the Steward certified (here: one for another package) must not learn whether a private tag
    exists, nor its tree's digest."""
    owner = RegistryClient(reg["server"].host, client_context(str(reg["ca"])), reg["token"])
    secret = b"private tree"
    root = Entry.of(secret, "application/octet-stream")
    with httpx.Client(verify=client_context(str(reg["ca"])), timeout=60,
                      headers={"Authorization": f"Bearer {reg['token']}"}) as http:
        url = f"{reg['base']}/priv/_tag/1.0.0"
        assert _put_tag(http, url, root).status_code == 201
        assert http.put(url + "/tree", content=secret, headers={"Content-Type": root.type,
                        "Content-Digest": root.content_digest()}).status_code == 201
    owner.close()
    context = keep_context(reg["steward_ca"], tmp_path, "k", claims("00" * 32), reg["ca"])
    with httpx.Client(verify=context, timeout=30) as http:
        existing = http.get(f"{reg['base']}/priv/_tag/1.0.0")
        missing = http.get(f"{reg['base']}/priv/_tag/9.9.9")
    assert root.digests["sha-256"].hex() not in existing.text, existing.text
    assert (existing.status_code, existing.json()["reason"]) == (missing.status_code, missing.json()["reason"]), (
        existing.text, missing.text)


def test_stored_token_is_not_sent_to_a_registry_whose_name_is_a_suffix(tmp_path: Path, monkeypatch) -> None:
    """alice logged in to acme-registry.fly.dev only; `enarx package info registry.fly.dev/…` (another
    tenant's host) must not get her token."""
    from enarx.drawbridge import credentials

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setattr(credentials, "_keyring", lambda: None)
    credentials.store(credentials.credential_id("https://auth.example.com", "acme-registry.fly.dev"), "ALICE-TOKEN")
    assert credentials.load("acme-registry.fly.dev") == "ALICE-TOKEN"
    assert credentials.load("registry.fly.dev") is None


def test_pending_upload_spools_of_another_process_survive_a_restart(reg, pki, issuer, tmp_path) -> None:
    """Two servers on one --store (or a restart while the old one still drains): start-up deletes tmp/*."""
    store = reg["work"] / "store"
    marker = store / "tmp" / "upload-inflight"
    marker.write_bytes(b"x")
    second = Drawbridge(pki, issuer, store=store)
    try:
        assert marker.exists(), "a starting server deleted another server's in-flight upload"
    finally:
        second.stop()


def _hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_slow_header_connection_is_closed(reg) -> None:
    """A client that never finishes its request headers, or stalls in its body, must be dropped (slowloris)."""
    import socket
    import ssl

    from enarx.drawbridge.server import BODY_IDLE_TIMEOUT, HEADER_TIMEOUT

    host, port = reg["server"].host.rsplit(":", 1)
    context = client_context(str(reg["ca"]))
    held = []
    for request in [b"GET /health HTTP/1.1\r\nHost: x\r\n"] * 3 + [  # never the blank line; a body that stalls
            f"PUT /api/v0.1.0/alice HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {reg['token']}\r\n"
            "Content-Length: 100\r\n\r\n{".encode()]:
        raw = socket.create_connection((host, int(port)))
        conn = context.wrap_socket(raw, server_hostname=host)
        conn.sendall(request)
        held.append(conn)
    # the server's deadlines, plus slack; far less than uvicorn's keep-alive (30 s) and TLS handshake (60 s)
    # timeouts, which do not apply to a request being received
    time.sleep(max(HEADER_TIMEOUT, BODY_IDLE_TIMEOUT) + 5)
    still_open = 0
    for conn in held:
        conn.settimeout(1)
        try:
            still_open += conn.recv(1) != b""
        except TimeoutError:
            still_open += 1
        except (ssl.SSLError, OSError):
            pass
        conn.close()
    assert still_open == 0, f"{still_open} half-open requests still held"
