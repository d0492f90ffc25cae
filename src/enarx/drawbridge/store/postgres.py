"""Metadata and object bytes in PostgreSQL (``--database postgresql://…``), for several Drawbridge processes
serving one registry. Object bytes are rows of 1 MiB chunks written in the same transaction as the node
that names them, so a node is visible only together with all of its bytes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from enarx.drawbridge.store.base import CHUNK, SCHEMA, Spool, Store, StoreError

READ_BATCH = 8  # chunks of 1 MiB per query when reading
BLOB_LOCK = 7263515  # advisory lock: shared while a node is stored, exclusive while objects are removed

BLOB_SCHEMA = """
CREATE TABLE IF NOT EXISTS blobs (key TEXT PRIMARY KEY, length BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (key TEXT NOT NULL, seq INTEGER NOT NULL, data BYTEA NOT NULL,
    PRIMARY KEY (key, seq));
"""


class _Cursor:
    """psycopg's cursor with the ``?`` placeholders the shared SQL uses."""

    def __init__(self, cur: Any):
        self.cur = cur

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        self.cur.execute(sql.replace("?", "%s"), params)

    def fetchone(self) -> Any:
        return self.cur.fetchone()

    def fetchall(self) -> list[Any]:
        return self.cur.fetchall()

    @property
    def rowcount(self) -> int:
        return self.cur.rowcount


class PostgresStore(Store):
    def __init__(self, url: str):
        try:
            import psycopg
        except ImportError:  # pragma: no cover - a dependency
            raise StoreError("PostgreSQL support needs the psycopg package") from None
        self.url = url
        self._psycopg = psycopg
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()
        with self.transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(7263514)")  # servers starting together create once
            for statement in (SCHEMA.format(blob="BYTEA") + BLOB_SCHEMA).split(";"):
                if statement.strip():
                    cur.execute(statement)
            self._count_usage(cur)

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            try:
                conn = self._psycopg.connect(self.url, autocommit=True)
            except self._psycopg.Error as exc:
                raise StoreError(f"cannot connect to the database: {str(exc).strip().splitlines()[0]}") from None
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        conn = self._conn()
        with conn.transaction(), conn.cursor() as cur:
            yield _Cursor(cur)

    def new_spool(self) -> Spool:
        return Spool(None)

    def _store_blob(self, cur: Any, key: str, spool: Spool, length: int) -> None:
        try:
            cur.execute("SELECT pg_advisory_xact_lock_shared(?)", (BLOB_LOCK,))  # see _lock_blobs
            cur.execute("INSERT INTO blobs (key, length) VALUES (?, ?) ON CONFLICT DO NOTHING", (key, length))
            if cur.rowcount != 1:
                return  # the same bytes are stored already
            with open(spool.path, "rb") as fh, cur.cur.copy("COPY chunks (key, seq, data) FROM STDIN") as copy:
                seq = 0
                while chunk := fh.read(CHUNK):
                    copy.write_row((key, seq, chunk))
                    seq += 1
        finally:
            spool.discard()

    def _lock_blobs(self, cur: Any) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(?)", (BLOB_LOCK,))

    def _blob_lengths(self, cur: Any) -> dict[str, int]:
        cur.execute("SELECT key, length FROM blobs")
        return {row[0]: int(row[1]) for row in cur.fetchall()}

    def _drop_blobs(self, cur: Any, keys: list[str]) -> None:
        for key in keys:
            cur.execute("DELETE FROM chunks WHERE key = ?", (key,))
            cur.execute("DELETE FROM blobs WHERE key = ?", (key,))

    def _lock_tag(self, cur: Any, user: str, repo: str, tag: str) -> None:
        cur.execute("SELECT 1 FROM tags WHERE owner = ? AND repo = ? AND name = ? FOR UPDATE", (user, repo, tag))

    def _blob_chunks(self, key: str) -> Iterator[bytes]:
        seq = 0
        while True:
            with self.transaction() as cur:  # a few chunks per query: fewer round trips, bounded memory
                cur.execute("SELECT data FROM chunks WHERE key = ? AND seq >= ? AND seq < ? ORDER BY seq",
                            (key, seq, seq + READ_BATCH))
                rows = cur.fetchall()
            for row in rows:
                yield bytes(row[0])
            if len(rows) < READ_BATCH:
                return
            seq += READ_BATCH

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
