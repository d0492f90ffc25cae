"""The embedded store: a directory holding ``drawbridge.sqlite`` (metadata) and ``objects/`` (bytes).

Objects are files named by their SHA-256 (``objects/ab/abcdef…``), written once: an upload goes to
``tmp/`` first and is renamed into place only after its digests matched, then the metadata row that makes
it visible is committed. Leftovers of an interrupted upload stay in ``tmp/`` and are removed at start-up.
Directories are created mode 0700.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from enarx.drawbridge.store.base import CHUNK, SCHEMA, Spool, Store, StoreError


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
            for leftover in self.tmp.iterdir():  # uploads a crash interrupted: never visible, now gone
                leftover.unlink()
        except OSError as exc:
            raise StoreError(f"cannot use store directory {str(self.root)!r}: {exc}") from None
        self.db_path = self.root / "drawbridge.sqlite"
        self._local = threading.local()
        with self.transaction() as cur:
            for statement in SCHEMA.format(blob="BLOB").split(";"):
                if statement.strip():
                    cur.execute(statement)

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
        return Spool(str(self.tmp))

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

    def _blob_chunks(self, key: str) -> Iterator[bytes]:
        try:
            fh = open(self._path(key), "rb")  # noqa: SIM115 - closed below, after the last chunk
        except OSError as exc:
            raise StoreError(f"stored object {key} cannot be read: {exc.strerror}") from None
        with fh:
            while chunk := fh.read(CHUNK):
                yield chunk
