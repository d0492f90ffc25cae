"""Objects nobody names are removed: a deleted pending tag takes its own objects with it (not one another tag
names), and `enarx drawbridge gc` collects what a crash left — on SQLite and on PostgreSQL, without ever
removing an object a node being stored at that moment is about to name."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest
from _fixtures import postgres, store_kwargs

from conftest import ENARX
from enarx.drawbridge.content import CT_DIRECTORY, CT_OCTETS, Entry, encode_directory
from enarx.drawbridge.store import Store, open_store


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request, tmp_path) -> tuple[str, dict]:
    kwargs = store_kwargs(request.param, tmp_path, request)
    return request.param, kwargs


def _open(kwargs: dict, cls: type | None = None) -> Store:
    if cls is None:
        return open_store(str(kwargs["store"]) if "store" in kwargs else None, kwargs.get("database"))
    return cls(kwargs["store"]) if "store" in kwargs else cls(kwargs["database"])


def _put(store: Store, tag: str, path: str, entry: Entry, data: bytes, children=None) -> None:
    spool = store.new_spool()
    spool.write(data)
    spool.finish()
    store.put_node("alice", "app", tag, path, entry, spool, children)


def _tree(*files: bytes) -> tuple[Entry, bytes, dict[str, Entry]]:
    children = {f"f{i}": Entry.of(data, CT_OCTETS) for i, data in enumerate(files)}
    directory = encode_directory(children)
    return Entry.of(directory, CT_DIRECTORY), directory, children


def _start(store: Store, tag: str, *files: bytes) -> dict[str, Entry]:
    """A tag whose root directory is stored: its files still to come."""
    root, directory, children = _tree(*files)
    store.put_tag("alice", "app", tag, root.encode(), root)
    _put(store, tag, "", root, directory, children)
    return children


def _publish(store: Store, tag: str, *files: bytes) -> None:
    children = _start(store, tag, *files)
    for (name, entry), data in zip(children.items(), files, strict=True):
        _put(store, tag, name, entry, data)


def _read(store: Store, tag: str, path: str) -> bytes:
    node = store.lookup("alice", "app", tag, path).node
    assert node is not None
    return store.read_all(node)


@pytest.fixture
def store(backend):
    store = _open(backend[1])
    store.put_user("alice", b'{"subject":"alice"}')
    store.put_repo("alice", "app", b'{"public":true}')
    yield store
    store.close()


def test_a_deleted_pending_tag_takes_only_its_own_objects(store: Store) -> None:
    _publish(store, "1.0.0", b"shared bytes")
    children = _start(store, "2.0.0", b"shared bytes", b"2.0.0 alone", b"never uploaded")  # broke off midway
    _put(store, "2.0.0", "f0", children["f0"], b"shared bytes")
    _put(store, "2.0.0", "f1", children["f1"], b"2.0.0 alone")
    alone = children["f1"].digests["sha-256"].hex()
    root = store.lookup("alice", "app", "2.0.0", "").node.blob
    with store.transaction() as cur:
        assert {alone, root} <= set(store._blob_lengths(cur))

    assert store.delete_pending_tag("alice", "app", "2.0.0")
    with store.transaction() as cur:
        after = set(store._blob_lengths(cur))
    assert alone not in after and root not in after  # its own objects are gone with it
    assert _read(store, "1.0.0", "f0") == b"shared bytes"  # the shared one stays, still readable
    assert store.collect_garbage() == (0, 0)  # nothing left behind


def test_gc_collects_what_a_crash_left(store: Store, backend) -> None:
    _publish(store, "1.0.0", b"kept")
    orphan = b"stored, then the server died before its node was committed"
    key = Entry.of(orphan, CT_OCTETS).digests["sha-256"].hex()
    spool = store.new_spool()
    spool.write(orphan)
    spool.finish()
    with store.transaction() as cur:
        store._store_blob(cur, key, spool, len(orphan))
    assert store.collect_garbage(dry_run=True) == (1, len(orphan))
    with store.transaction() as cur:
        assert key in store._blob_lengths(cur)  # a dry run removes nothing
    store.close()
    where = (["--store", str(backend[1]["store"])] if "store" in backend[1] else
             ["--database", backend[1]["database"]])
    done = subprocess.run([*ENARX, "drawbridge", "gc", *where], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"removed 1 unreferenced object ({len(orphan)} bytes)"
    again = _open(backend[1])
    try:
        assert _read(again, "1.0.0", "f0") == b"kept"
        assert again.collect_garbage() == (0, 0)
    finally:
        again.close()


def test_gc_never_removes_an_object_a_node_is_being_stored_with(backend) -> None:
    """A node is being stored with bytes already present as an orphan (left by a crash): a collection that
    starts meanwhile waits for it, and the object survives."""
    kwargs = backend[1]
    base = type(_open(kwargs))
    inside, release = threading.Event(), threading.Event()

    class Paused(base):  # type: ignore[misc, valid-type]
        pause = False

        def _lock_tag(self, cur, user, repo, tag):  # put_node: after its object is stored, before its node
            super()._lock_tag(cur, user, repo, tag)
            if self.pause:
                inside.set()
                assert release.wait(30)

    writer = _open(kwargs, Paused)
    writer.put_user("alice", b'{"subject":"alice"}')
    writer.put_repo("alice", "app", b'{"public":true}')
    data = b"bytes a crash left, uploaded again"
    children = _start(writer, "1.0.0", data)
    spool = writer.new_spool()
    spool.write(data)
    spool.finish()
    with writer.transaction() as cur:  # the orphan a crash left
        writer._store_blob(cur, children["f0"].digests["sha-256"].hex(), spool, len(data))
    collector = _open(kwargs)  # opened first: opening a SQLite store waits for the writer's lock as well
    writer.pause = True
    storing = threading.Thread(target=_put, args=(writer, "1.0.0", "f0", children["f0"], data))
    storing.start()
    assert inside.wait(30)
    result: list = []
    collecting = threading.Thread(target=lambda: result.append(collector.collect_garbage()))
    collecting.start()
    collecting.join(1.0)
    assert collecting.is_alive(), "the collection did not wait for the node being stored"
    release.set()
    storing.join(30)
    collecting.join(30)
    assert result == [(0, 0)]
    assert _read(collector, "1.0.0", "f0") == data
    writer.close()
    collector.close()


def test_gc_command_errors_are_one_line(tmp_path: Path) -> None:
    both = subprocess.run([*ENARX, "drawbridge", "gc", "--store", str(tmp_path), "--database", "postgresql://x"],
                          capture_output=True, text=True, timeout=60)
    assert both.returncode == 2 and "give either --store DIR or --database" in both.stderr
    missing = subprocess.run([*ENARX, "drawbridge", "gc", "--store", str(tmp_path / "nope")],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and missing.stderr.startswith("Error: store directory")
    assert "Traceback" not in missing.stderr


def test_deleting_a_pending_tag_finds_other_names_of_its_objects_by_index(store: Store, backend) -> None:
    """Any user with a pending tag can delete it, and each of its objects is then looked up among every node
    of every user while the removal holds the store's write lock (PostgreSQL: the lock every upload takes):
    without an index on nodes(blob) a big pending tree made every publish on the registry wait through a full
    scan of the nodes per object."""
    if backend[0] == "sqlite":
        with store.transaction() as cur:
            cur.execute("EXPLAIN QUERY PLAN SELECT 1 FROM nodes WHERE blob = ? LIMIT 1", ("00" * 32,))
            plan = " ".join(str(row[-1]) for row in cur.fetchall())
        assert "USING COVERING INDEX" in plan, plan
    else:
        with store.transaction() as cur:
            cur.execute("SET LOCAL enable_seqscan = off")
            cur.execute("EXPLAIN SELECT 1 FROM nodes WHERE blob = ? LIMIT 1", ("00" * 32,))
            plan = " ".join(row[0] for row in cur.fetchall())
        assert "Index Only Scan" in plan, plan
