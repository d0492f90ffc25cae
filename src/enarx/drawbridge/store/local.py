"""The embedded store: a directory holding ``drawbridge.sqlite`` (metadata) and ``objects/`` (bytes).

Objects are files named by their SHA-256 (``objects/ab/abcdef…``), written once: an upload goes to
``tmp/`` first and is renamed into place only after its digests matched, then the metadata row that makes
it visible is committed. Each server process spools into its own ``tmp/spool-*/``, which it holds an
exclusive ``flock`` on while it runs; at start-up a server removes only the spool directories no live
process holds (leftovers of a crash), so several servers (or a restart while the old one drains) can share
one store. Directories are created mode 0700.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from enarx.drawbridge.store.base import CHUNK, SCHEMA, Spool, Store, StoreError

_OBJECT_NAME = re.compile(r"[0-9a-f]{64}")  # an object's SHA-256, the only file name objects/ holds


class LocalStore(Store):
    def __init__(self, directory: str | os.PathLike[str]):
        self.root = Path(directory)
        if not self.root.is_dir():
            raise StoreError(f"store directory {str(self.root)!r} does not exist")
        self.objects = self.root / "objects"
        self.tmp = self.root / "tmp"
        try:
            for path in (self.objects, self.tmp):
                path.mkdir(mode=0o700, exist_ok=True)
            self.spool_dir, self._spool_lock = _claim_spool_dir(self.tmp)
        except OSError as exc:
            raise StoreError(f"cannot use store directory {str(self.root)!r}: {exc}") from None
        self.db_path = self.root / "drawbridge.sqlite"
        self._local = threading.local()
        with self.transaction() as cur:
            for statement in SCHEMA.format(blob="BLOB").split(";"):
                if statement.strip():
                    cur.execute(statement)
            self._count_usage(cur)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.db_path, isolation_level=None, timeout=30, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open {self.db_path}: {exc}") from None
            self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        conn = self._conn()
        cur = conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            yield cur
        except BaseException:
            conn.rollback()
            raise
        else:
            conn.commit()
        finally:
            cur.close()

    def new_spool(self) -> Spool:
        return Spool(str(self.spool_dir))

    def close(self) -> None:
        if self._spool_lock is not None:
            shutil.rmtree(self.spool_dir, ignore_errors=True)
            os.close(self._spool_lock)  # releases the flock
            self._spool_lock = None

    def _path(self, key: str) -> Path:
        return self.objects / key[:2] / key

    def _store_blob(self, cur: Any, key: str, spool: Spool, length: int) -> None:
        final = self._path(key)
        if final.exists():  # the same bytes are stored already (another tag, or a resumed upload)
            spool.discard()
            return
        final.parent.mkdir(mode=0o700, exist_ok=True)
        os.replace(spool.path, final)
        fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _lock_blobs(self, cur: Any) -> None:
        """Write transactions are serial already; make every commit so far durable before any object goes.
        With ``synchronous=NORMAL`` a commit reaches the disk only at a checkpoint: were an object's removal
        durable before the deletion of the nodes that named it, a power loss would bring back nodes without
        their bytes (and a resumed publish, seeing them stored, would complete a tag that cannot be read)."""
        for name in ("drawbridge.sqlite-wal", "drawbridge.sqlite"):
            try:
                fd = os.open(self.root / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # no WAL: every commit is in the database file, synced by its checkpoint
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _blob_lengths(self, cur: Any) -> dict[str, int]:
        """Only what this store could have written: ``objects/xy/xy…`` (64 lowercase hex), regular files in
        real directories. Nothing else in ``objects/`` is counted or removed, and no link is followed."""
        lengths = {}
        with os.scandir(self.objects) as shards:
            for shard in shards:
                if len(shard.name) != 2 or not shard.is_dir(follow_symlinks=False):
                    continue
                with os.scandir(shard.path) as entries:
                    for entry in entries:
                        if (entry.name[:2] == shard.name and _OBJECT_NAME.fullmatch(entry.name)
                                and entry.is_file(follow_symlinks=False)):
                            lengths[entry.name] = entry.stat(follow_symlinks=False).st_size
        return lengths

    def _drop_blobs(self, cur: Any, keys: list[str]) -> None:
        by_shard: dict[str, list[str]] = {}
        for key in keys:
            by_shard.setdefault(key[:2], []).append(key)
        for shard, names in by_shard.items():
            try:  # never through a link planted in place of a shard
                fd = os.open(self.objects / shard, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError as exc:
                raise StoreError(f"cannot remove objects from {self.objects / shard}: {exc.strerror}") from None
            try:
                for name in names:
                    try:
                        os.unlink(name, dir_fd=fd)
                    except FileNotFoundError:
                        pass
                os.fsync(fd)  # the removals are durable before the lock is given up
            except OSError as exc:
                raise StoreError(f"cannot remove object {shard}/…: {exc.strerror}") from None
            finally:
                os.close(fd)

    def _blob_chunks(self, key: str) -> Iterator[bytes]:
        try:
            fh = open(self._path(key), "rb")  # noqa: SIM115 - closed below, after the last chunk
        except OSError as exc:
            raise StoreError(f"stored object {key} cannot be read: {exc.strerror}") from None
        with fh:
            while chunk := fh.read(CHUNK):
                yield chunk


def _claim_spool_dir(tmp: Path) -> tuple[Path, int]:
    """A spool directory of this process's own, locked while the process lives; the spool directories of
    processes that died (their locks are free) are removed. Start-ups are serialised by ``tmp/.startup``."""
    startup = os.open(tmp / ".startup", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(startup, fcntl.LOCK_EX)
        for leftover in tmp.glob("spool-*"):
            _remove_if_abandoned(leftover)
        spool_dir = Path(tempfile.mkdtemp(prefix="spool-", dir=tmp))
        lock = os.open(spool_dir / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return spool_dir, lock
    finally:
        os.close(startup)


def _remove_if_abandoned(spool_dir: Path) -> None:
    try:
        lock = os.open(spool_dir / ".lock", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return  # not a spool directory of ours
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return  # a live server's
    finally:
        os.close(lock)
    shutil.rmtree(spool_dir, ignore_errors=True)  # uploads a crash interrupted: never visible, now gone
