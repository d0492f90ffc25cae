"""A per-user quota (`enarx drawbridge serve --quota SIZE`): one user cannot fill the registry's storage. Every
node a user's tags hold is counted (pending ones too), on SQLite and on PostgreSQL; a publish that would pass
the quota is refused before its bytes are read (413, one line at the client), deleting a pending tag gives the
space back, and concurrent uploads cannot pass it together."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from _fixtures import Drawbridge, cli, issuer, pki, postgres, store_kwargs

from enarx.drawbridge.content import CT_DIRECTORY, CT_OCTETS, Entry, encode_directory
from enarx.drawbridge.store import QuotaExceeded, Store, open_store

QUOTA = 1 << 20


@pytest.fixture(params=["sqlite", "postgres"])
def kwargs(request, tmp_path) -> dict:
    return store_kwargs(request.param, tmp_path, request)


def _open(kwargs: dict) -> Store:
    return open_store(str(kwargs["store"]) if "store" in kwargs else None, kwargs.get("database"))


def _put(store: Store, tag: str, path: str, entry: Entry, data: bytes, children=None, quota=QUOTA) -> None:
    spool = store.new_spool()
    spool.write(data)
    spool.finish()
    store.put_node("alice", "app", tag, path, entry, spool, children, quota)


def _start(store: Store, tag: str, *files: bytes) -> dict[str, Entry]:
    children = {f"f{i}": Entry.of(data, CT_OCTETS) for i, data in enumerate(files)}
    directory = encode_directory(children)
    root = Entry.of(directory, CT_DIRECTORY)
    store.put_tag("alice", "app", tag, root.encode(), root)
    _put(store, tag, "", root, directory, children)
    return children


@pytest.fixture
def store(kwargs):
    store = _open(kwargs)
    store.put_user("alice", b'{"subject":"alice"}')
    store.put_repo("alice", "app", b'{"public":true}')
    yield store
    store.close()


def test_usage_is_counted_refused_past_the_quota_and_given_back(store: Store) -> None:
    big = os.urandom(600 << 10)
    first = _start(store, "1.0.0", big)
    directory_size = store.usage("alice")
    _put(store, "1.0.0", "f0", first["f0"], big)
    assert store.usage("alice") == directory_size + len(big)
    other = os.urandom(600 << 10)  # under the quota alone, not with the first
    second = _start(store, "2.0.0", other)
    before = store.usage("alice")
    with pytest.raises(QuotaExceeded, match=r"alice stores \d+ bytes; this object of 614400 bytes would pass"):
        _put(store, "2.0.0", "f0", second["f0"], other)
    assert store.usage("alice") == before  # nothing counted …
    assert store.lookup("alice", "app", "2.0.0", "f0").node is None  # … nothing stored
    assert store.collect_garbage() == (0, 0)  # not even an object without its node
    assert store.delete_pending_tag("alice", "app", "2.0.0")
    assert store.usage("alice") == directory_size + len(big)  # the pending tag's directory is given back


def test_a_store_from_an_older_release_is_counted_once(kwargs) -> None:
    store = _open(kwargs)
    store.put_user("alice", b'{"subject":"alice"}')
    store.put_repo("alice", "app", b'{"public":true}')
    children = _start(store, "1.0.0", b"x" * 5000)
    _put(store, "1.0.0", "f0", children["f0"], b"x" * 5000)
    counted = store.usage("alice")
    with store.transaction() as cur:
        cur.execute("DELETE FROM usage")  # as a release without quotas left it
    store.close()
    reopened = _open(kwargs)
    try:
        assert reopened.usage("alice") == counted == 5000 + len(encode_directory(children))
    finally:
        reopened.close()


def test_concurrent_uploads_cannot_pass_the_quota_together(store: Store) -> None:
    blobs = [os.urandom(600 << 10), os.urandom(600 << 10)]
    entries = [_start(store, f"{i}.0.0", blob)["f0"] for i, blob in enumerate(blobs, 3)]
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def put(i: int) -> None:
        barrier.wait()
        try:
            _put(store, f"{i + 3}.0.0", "f0", entries[i], blobs[i])
            outcomes.append("stored")
        except QuotaExceeded:
            outcomes.append("refused")

    threads = [threading.Thread(target=put, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes) == ["refused", "stored"]
    assert store.usage("alice") <= QUOTA


def test_publish_past_the_quota_is_one_line(pki, issuer, tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    registry = Drawbridge(pki, issuer, store=tmp_path / "store", extra=("--quota", "1MiB"))
    try:
        token = issuer.mint("alice")
        for args in (("user", "register", f"{registry.host}/alice"), ("repo", "register", f"{registry.host}/alice/app")):
            assert cli(*args, token=token, ca=pki.ca_pem).returncode == 0
        package = tmp_path / "pkg"
        (package / "data").mkdir(parents=True)
        (package / "main.wasm").write_bytes(b"\0asm\x01\0\0\0")
        (package / "data" / "big.bin").write_bytes(os.urandom(700 << 10))
        slug = f"{registry.host}/alice/app:1.0.0"
        assert cli("package", "publish", slug, package, token=token, ca=pki.ca_pem).returncode == 0
        refused = cli("package", "publish", f"{registry.host}/alice/app:2.0.0", package, token=token, ca=pki.ca_pem)
        lines = [line for line in refused.stderr.decode().splitlines() if line.strip()]
        assert refused.returncode == 1 and len(lines) == 1, refused.stderr
        assert lines[0].startswith(f"Error: {registry.host} refused publishing alice/app:2.0.0: alice stores ")
        assert "quota of 1048576 bytes per user" in lines[0] and lines[0].endswith("(413)")
    finally:
        registry.stop()


def test_quota_option_is_checked(tmp_path: Path) -> None:
    from conftest import enarx

    proc = enarx("drawbridge", "serve", "--store", tmp_path, "--tls-crt", __file__, "--tls-key", __file__,
                 "--quota", "lots")
    assert proc.returncode == 2 and "--quota" in proc.stderr.decode()
