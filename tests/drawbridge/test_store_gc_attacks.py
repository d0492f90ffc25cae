"""Attacks on the embedded store's garbage collection: whoever can write into ``objects/`` (the service account a
registry runs as) must not make an operator's `enarx drawbridge gc` remove files outside the store, or stop it
with an internal error; and no object goes before the removal of the nodes that named it is durable."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from conftest import ENARX
from enarx.drawbridge.content import CT_DIRECTORY, CT_OCTETS, Entry, encode_directory
from enarx.drawbridge.store.local import LocalStore


def _gc(store: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([*ENARX, "drawbridge", "gc", "--store", str(store), *extra], capture_output=True,
                          text=True, timeout=60)


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "store"
    directory.mkdir()
    LocalStore(directory).close()
    return directory


def test_gc_does_not_follow_a_planted_shard_symlink_out_of_the_store(store_dir: Path, tmp_path: Path) -> None:
    victim = tmp_path / "etc"
    victim.mkdir()
    (victim / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (store_dir / "objects" / "pa").symlink_to(victim)  # objects/pa/passwd: a name that starts with its shard
    for extra in (("--dry-run",), ()):
        done = _gc(store_dir, *extra)
        assert done.returncode == 0, done.stderr
        assert "0 unreferenced objects" in done.stdout
    assert (victim / "passwd").read_text().startswith("root:")


def test_gc_leaves_what_is_not_an_object_and_answers_cleanly(store_dir: Path, tmp_path: Path) -> None:
    shard = store_dir / "objects" / "ab"
    shard.mkdir()
    (shard / "abdir").mkdir()  # a directory where an object would be
    (shard / "ab.partial").write_bytes(b"an operator's stray file")
    (shard / ("ab" + "0" * 62)).symlink_to(tmp_path / "nowhere")  # a dangling link named as an object
    outside = tmp_path / "outside"
    outside.write_bytes(b"x" * 1000)
    (shard / ("ab" + "1" * 62)).symlink_to(outside)  # a link to a file outside: not the store's to count
    done = _gc(store_dir)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "removed 0 unreferenced objects (0 bytes)"
    assert (shard / "abdir").is_dir() and (shard / "ab.partial").exists() and outside.exists()


def test_a_real_orphan_is_still_collected(store_dir: Path) -> None:
    data = b"left by a crash"
    key = Entry.of(data, CT_OCTETS).digests["sha-256"].hex()
    (store_dir / "objects" / key[:2]).mkdir()
    (store_dir / "objects" / key[:2] / key).write_bytes(data)
    done = _gc(store_dir)
    assert done.stdout.strip() == f"removed 1 unreferenced object ({len(data)} bytes)", done.stderr
    assert not (store_dir / "objects" / key[:2] / key).exists()


def test_a_pending_tags_objects_go_only_after_its_deletion_is_durable(store_dir: Path, monkeypatch) -> None:
    """SQLite runs with synchronous=NORMAL: a commit reaches the disk at the next checkpoint. If the objects
    were unlinked (durably) before the deletion of the nodes naming them was, a power loss would bring the
    pending tag back with nodes whose objects are gone; a resumed publish HEADs those nodes, skips them and
    completes an immutable tag that can never be read."""
    store = LocalStore(store_dir)
    store.put_user("alice", b'{"subject":"alice"}')
    store.put_repo("alice", "app", b'{"public":true}')
    missing = {"g": Entry.of(b"never uploaded", CT_OCTETS)}
    tree = encode_directory(missing)
    root = Entry.of(tree, CT_DIRECTORY)
    store.put_tag("alice", "app", "1.0.0", root.encode(), root)
    spool = store.new_spool()
    spool.write(tree)
    spool.finish()
    store.put_node("alice", "app", "1.0.0", "", root, spool, missing)  # the publish broke off here

    events: list[str] = []
    wal = os.path.realpath(store_dir / "drawbridge.sqlite-wal")
    real_fsync, real_unlink = os.fsync, os.unlink

    def fsync(fd: int) -> None:
        if os.path.realpath(f"/proc/self/fd/{fd}") == wal:
            events.append("wal synced")
        real_fsync(fd)

    def unlink(path, *args, **kwargs) -> None:
        if len(os.path.basename(os.fspath(path))) == 64:
            events.append("object unlinked")
        real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "unlink", unlink)
    assert store.delete_pending_tag("alice", "app", "1.0.0")
    store.close()
    assert "object unlinked" in events
    assert events.index("wal synced") < events.index("object unlinked"), events


def test_gc_refuses_a_directory_that_is_not_a_store(tmp_path: Path) -> None:
    """A mistyped --store (a home directory, a git checkout's .git) is not made into an empty store and
    collected: nothing there is named by a node, so everything that looked like an object would go."""
    done = _gc(tmp_path)
    assert done.returncode == 1 and done.stderr.startswith("Error: ") and "not a Drawbridge store" in done.stderr
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []  # nothing created there
