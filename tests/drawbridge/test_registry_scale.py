"""Concurrency and failure: two publishers racing for one tag, a server killed mid-upload and restarted,
corrupted storage, and two servers on one PostgreSQL database behind haproxy."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from _fixtures import cli, issuer, pki, postgres, start_drawbridge, store_kwargs
from _postgres import ensure_installed

from conftest import ENARX, example
from enarx.cabundle import client_context
from enarx.drawbridge.client import RegistryClient, RegistryError
from enarx.drawbridge.content import CT_OCTETS, Entry
from enarx.drawbridge.names import Slug
from enarx.drawbridge.store.base import PENDING_CONFLICT
from enarx.drawbridge.tree import build_tree


def _setup(host: str, pki, issuer, private: bool = False) -> tuple[RegistryClient, str]:
    token = issuer.mint("alice-sub")
    client = RegistryClient(host, client_context(str(pki.ca_pem)), token)
    try:
        client.register_user(Slug(host, "alice"), "alice-sub")
        client.register_repo(Slug(host, "alice", "app"), {"public": not private})
    except RegistryError as exc:
        assert exc.status == 409
    return client, token


def _package(directory: Path, marker: bytes, size: int = 200_000) -> Path:
    (directory / "data").mkdir(parents=True)
    (directory / "main.wasm").write_bytes(example("c", "hello").read_bytes())
    (directory / "data" / "blob.bin").write_bytes(marker * (size // len(marker)))
    return directory


def _publish_both(host: str, token: str, pki, packages: list[Path], tag: str) -> list[subprocess.Popen]:
    import os

    env = {**os.environ, "ENARX_CA_BUNDLE": str(pki.ca_pem), "ENARX_INSECURE_AUTH_TOKEN": token}
    procs = [subprocess.Popen([*ENARX, "package", "publish", f"{host}/alice/app:{tag}", str(p)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for p in packages]
    for proc in procs:
        proc.wait(120)
    return procs


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_concurrent_publishes_of_one_tag(backend: str, start_drawbridge, pki, issuer, tmp_path: Path,
                                         request: pytest.FixtureRequest) -> None:
    server = start_drawbridge(**store_kwargs(backend, tmp_path, request))
    client, token = _setup(server.host, pki, issuer)
    packages = [_package(tmp_path / "a", b"AAAA"), _package(tmp_path / "b", b"BBBB")]
    procs = _publish_both(server.host, token, pki, packages, "1.0.0")
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 1], [p.stderr.read() for p in procs]
    loser = next(p for p in procs if p.returncode == 1)
    line = loser.stderr.read().decode().strip()
    # the loser finds the tag complete, or still being published by the winner
    assert line in (f"Error: {server.host} refused publishing alice/app:1.0.0: {detail} (409)"
                    for detail in ("tag already exists", PENDING_CONFLICT))
    winner = packages[[p.returncode for p in procs].index(0)]
    tree = client.fetch_tree(f"https://{server.host}/api/v0.1.0/alice/app/_tag/1.0.0")
    assert tree.files["data/blob.bin"] == (winner / "data" / "blob.bin").read_bytes()
    assert tree.root.matches(build_tree(winner)[0].entry)
    # the same package from two processes at once: both succeed, the store holds it once
    procs = _publish_both(server.host, token, pki, [packages[0], packages[0]], "2.0.0")
    assert [p.returncode for p in procs] == [0, 0], [p.stderr.read() for p in procs]
    tree = client.fetch_tree(f"https://{server.host}/api/v0.1.0/alice/app/_tag/2.0.0")
    assert tree.files["data/blob.bin"] == (packages[0] / "data" / "blob.bin").read_bytes()
    client.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_server_killed_during_upload(backend: str, start_drawbridge, pki, issuer, tmp_path: Path,
                                     request: pytest.FixtureRequest) -> None:
    kw = store_kwargs(backend, tmp_path, request)
    server = start_drawbridge(**kw)
    client, token = _setup(server.host, pki, issuer)
    data = b"partial-upload " * 700_000  # ~10 MB
    entry = Entry.of(data, CT_OCTETS)
    body = entry.encode()
    with httpx.Client(verify=client_context(str(pki.ca_pem)), headers={"Authorization": f"Bearer {token}"}) as http:
        base = f"https://{server.host}/api/v0.1.0/alice/app/_tag/1.0.0"
        assert http.put(base, content=body, headers={"Content-Type": "application/vnd.drawbridge.entry.v1+json",
                                                     "Content-Digest": Entry.of(body, "x/y").content_digest()}
                        ).status_code == 201
    host, port = server.host.rsplit(":", 1)
    head = (f"PUT /api/v0.1.0/alice/app/_tag/1.0.0/tree HTTP/1.1\r\nHost: {server.host}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: {CT_OCTETS}\r\nContent-Digest: {entry.content_digest()}"
            f"\r\nContent-Length: {len(data)}\r\n\r\n")
    sock = client_context(str(pki.ca_pem)).wrap_socket(socket.create_connection((host, int(port))),
                                                        server_hostname=host)
    sock.sendall(head.encode() + data[: len(data) // 2])
    time.sleep(0.5)  # the server is now writing the upload to its spool
    server.stop(signal.SIGKILL)
    sock.close()
    restarted = start_drawbridge(**kw)
    owner = RegistryClient(restarted.host, client_context(str(pki.ca_pem)), token)
    with pytest.raises(RegistryError) as refused:
        owner.request("HEAD", "/alice/app/_tag/1.0.0/tree", "reading", ok=(200,))
    assert refused.value.status == 404
    if backend == "sqlite":
        store = kw["store"]
        # the killed server's spool directory and the interrupted upload in it are gone; the restarted server's own
        # spool directory is empty
        assert [p.name for p in (store / "tmp").rglob("*") if p.name not in (".startup", ".lock")] == [
            restarted_spool.name for restarted_spool in (store / "tmp").glob("spool-*")]
        assert len(list((store / "tmp").glob("spool-*"))) == 1
        assert not any(p.name == entry.digests["sha-256"].hex() for p in (store / "objects").rglob("*"))
    # the same upload, complete this time, is accepted after the restart
    owner.request("PUT", "/alice/app/_tag/1.0.0/tree", "uploading", content=data,
                  headers={"Content-Type": CT_OCTETS, "Content-Digest": entry.content_digest()})
    assert owner.fetch_tree(f"https://{restarted.host}/api/v0.1.0/alice/app/_tag/1.0.0").files[""] == data
    owner.close()
    client.close()


def test_corrupted_object_is_never_served_whole(start_drawbridge, pki, issuer, tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    server = start_drawbridge(store=store)
    client, _token = _setup(server.host, pki, issuer)
    package = _package(tmp_path / "pkg", b"GOOD")
    client.publish(Slug(server.host, "alice", "app", "1.0.0"), build_tree(package))
    key = Entry.of((package / "data" / "blob.bin").read_bytes(), CT_OCTETS).digests["sha-256"].hex()
    stored = next(p for p in (store / "objects").rglob(key))
    stored.chmod(0o600)
    stored.write_bytes(stored.read_bytes().replace(b"GOOD", b"EVIL", 1))  # same length, other bytes
    with pytest.raises(RegistryError):
        client.fetch_tree(f"https://{server.host}/api/v0.1.0/alice/app/_tag/1.0.0")
    with httpx.Client(verify=client_context(str(pki.ca_pem))) as http, pytest.raises(httpx.HTTPError):
        http.get(f"https://{server.host}/api/v0.1.0/alice/app/_tag/1.0.0/tree/data/blob.bin")
    client.close()


def _haproxy(tmp_path: Path, backends: list[str]) -> tuple[subprocess.Popen, str]:
    ensure_installed("haproxy", "haproxy")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    servers = "\n".join(f"    server s{i} {b} check" for i, b in enumerate(backends))
    config = tmp_path / "haproxy.cfg"
    config.write_text(f"""global
    maxconn 256
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend registry
    bind 127.0.0.1:{port}
    default_backend drawbridges
backend drawbridges
    balance roundrobin
{servers}
""")
    proc = subprocess.Popen([shutil.which("haproxy") or "haproxy", "-db", "-f", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    return proc, f"127.0.0.1:{port}"


def test_two_servers_on_one_database_behind_haproxy(start_drawbridge, pki, issuer, postgres, tmp_path: Path
                                                    ) -> None:
    database = postgres.new_database()
    servers = [start_drawbridge(database=database) for _ in range(2)]
    proxy, host = _haproxy(tmp_path, [s.host for s in servers])
    try:
        client, token = _setup(host, pki, issuer)
        packages = [_package(tmp_path / "a", b"AAAA"), _package(tmp_path / "b", b"BBBB")]
        procs = _publish_both(host, token, pki, packages, "1.0.0")  # round robin: one connection to each server
        assert sorted(p.returncode for p in procs) == [0, 1], [p.stderr.read() for p in procs]
        winner = packages[[p.returncode for p in procs].index(0)]
        result = cli("package", "publish", f"{host}/alice/app:1.1.0", packages[1], token=token, ca=pki.ca_pem)
        assert result.returncode == 0, result.stderr
        expected: dict[str, Any] = {"1.0.0": winner, "1.1.0": packages[1]}
        for server in servers:  # each server serves what was published through the other
            reader = RegistryClient(server.host, client_context(str(pki.ca_pem)))
            for tag, package in expected.items():
                tree = reader.fetch_tree(f"https://{server.host}/api/v0.1.0/alice/app/_tag/{tag}")
                assert tree.files["data/blob.bin"] == (package / "data" / "blob.bin").read_bytes()
            reader.close()
        client.close()
    finally:
        proxy.terminate()
        proxy.wait(10)
