"""The storage interface and the logic both backends share (SQL metadata, tag completion, read checks).

A tag is published in two steps: its entry (naming the root of its tree) first, then the tree's nodes.
Until every node is stored the tag is *pending*: it is not listed or served, and the rows of ``missing``
hold, for each node still to come, the entry its parent requires. Storing a directory adds its children
to ``missing``; the tag becomes *complete* in the transaction that stores its last node. Every object is
kept under the SHA-256 of its bytes and checked against it again whenever it is read.
"""

from __future__ import annotations

import abc
import hashlib
import hmac
import os
import tempfile
from collections.abc import Iterator
from typing import Any, NamedTuple

from enarx.drawbridge.content import Entry

CHUNK = 1 << 20


class StoreError(Exception):
    """The store cannot be opened or used (message for the operator), or an object is corrupt."""


class Conflict(Exception):
    """A write-once object already exists (or is being published with other content)."""


class QuotaExceeded(Exception):
    """Storing a node would take its owner past the registry's per-user quota."""


PENDING_CONFLICT = ("tag already exists, still being published with another tree (if that publish broke off, delete "
                    "the pending tag with `enarx package delete` and publish again)")


class TagState(NamedTuple):
    entry: bytes  # the canonical tag entry as uploaded
    complete: bool
    missing: int  # nodes still to be stored


class Node(NamedTuple):
    entry: Entry
    blob: str  # sha-256 hex of the bytes


class Facts(NamedTuple):
    """What one request needs to know, read in one transaction (user record, repository config, tag, node)."""

    user: bytes | None = None
    repo: bytes | None = None
    tag: TagState | None = None
    node: Node | None = None  # the stored node at the path
    expected: Entry | None = None  # the entry a node still to be stored at the path must match


class Spool:
    """A temporary file an upload is written to before its digests are known to be right."""

    def __init__(self, directory: str | None):
        fd, self.path = tempfile.mkstemp(prefix="upload-", dir=directory)
        self.file = os.fdopen(fd, "wb")

    def write(self, data: bytes) -> None:
        self.file.write(data)

    def finish(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()

    def discard(self) -> None:
        if not self.file.closed:
            self.file.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def child_path(path: str, name: str) -> str:
    return f"{path}/{name}" if path else name


SCHEMA = """
CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY, record {blob} NOT NULL);
CREATE TABLE IF NOT EXISTS repos (owner TEXT NOT NULL, name TEXT NOT NULL, config {blob} NOT NULL,
    PRIMARY KEY (owner, name));
CREATE TABLE IF NOT EXISTS tags (owner TEXT NOT NULL, repo TEXT NOT NULL, name TEXT NOT NULL,
    entry {blob} NOT NULL, complete BOOLEAN NOT NULL, PRIMARY KEY (owner, repo, name));
CREATE TABLE IF NOT EXISTS nodes (owner TEXT NOT NULL, repo TEXT NOT NULL, tag TEXT NOT NULL, path TEXT NOT NULL,
    entry {blob} NOT NULL, blob TEXT NOT NULL, PRIMARY KEY (owner, repo, tag, path));
CREATE INDEX IF NOT EXISTS nodes_blob ON nodes (blob);
CREATE TABLE IF NOT EXISTS missing (owner TEXT NOT NULL, repo TEXT NOT NULL, tag TEXT NOT NULL, path TEXT NOT NULL,
    entry {blob} NOT NULL, PRIMARY KEY (owner, repo, tag, path));
CREATE TABLE IF NOT EXISTS usage (owner TEXT PRIMARY KEY, bytes BIGINT NOT NULL);
"""


class Store(abc.ABC):
    """Users, repositories, tags and tree nodes, with write-once semantics. Methods block (call them from a
    thread pool); every write is one transaction, so concurrent writers (threads, processes, servers on one
    database) see either all of a write or none of it."""

    # -- backend hooks ------------------------------------------------------------------------------
    @abc.abstractmethod
    def transaction(self) -> Any:
        """A context manager yielding a cursor-like object with ``execute(sql, params)`` (``?`` placeholders)
        and ``fetchone``/``fetchall``, committed on success and rolled back on error."""

    @abc.abstractmethod
    def new_spool(self) -> Spool:
        """Where an upload is written while its digests are computed."""

    @abc.abstractmethod
    def _store_blob(self, cur: Any, key: str, spool: Spool, length: int) -> None:
        """Make the spooled bytes readable under ``key`` (idempotent), within the transaction ``cur``."""

    @abc.abstractmethod
    def _blob_chunks(self, key: str) -> Iterator[bytes]:
        """The stored bytes of ``key``, in chunks (no checking: :meth:`read` checks)."""

    @abc.abstractmethod
    def _blob_lengths(self, cur: Any) -> dict[str, int]:
        """Every stored object's key and length, read within ``cur`` (for garbage collection)."""

    @abc.abstractmethod
    def _drop_blobs(self, cur: Any, keys: list[str]) -> None:
        """Remove the objects ``keys``, which no node names, while ``cur`` holds :meth:`_lock_blobs` (files are
        gone at once: a rollback cannot bring them back, so only objects nothing names are dropped)."""

    def _lock_blobs(self, cur: Any) -> None:
        """Keep every object's references still until ``cur`` ends: no node is stored meanwhile that could
        name an object about to be removed; and every commit so far (the deletion of the nodes that named
        those objects) durable before an object goes. Where write transactions are serial (SQLite) no lock
        is needed.
        Never held with a tag lock, except by :meth:`put_node`, which takes its share first: locks never cross."""

    def _lock_tag(self, cur: Any, user: str, repo: str, tag: str) -> None:
        """Serialize the node writes of one tag, so that exactly one of them sees the last missing node go and
        completes the tag. Nothing to do where write transactions are serial already (SQLite)."""

    def close(self) -> None:
        """Release connections."""

    def lookup(self, user: str, repo: str | None, tag: str | None, path: str | None) -> Facts:
        """Everything a request about ``user/repo:tag/path`` checks, in one transaction."""
        with self.transaction() as cur:
            cur.execute("SELECT record FROM users WHERE name = ?", (user,))
            row = cur.fetchone()
            facts = Facts(user=bytes(row[0]) if row else None)
            if repo is None:
                return facts
            cur.execute("SELECT config FROM repos WHERE owner = ? AND name = ?", (user, repo))
            row = cur.fetchone()
            facts = facts._replace(repo=bytes(row[0]) if row else None)
            if tag is None or row is None:
                return facts
            cur.execute("SELECT entry, complete FROM tags WHERE owner = ? AND repo = ? AND name = ?", (user, repo, tag))
            row = cur.fetchone()
            if row is None:
                return facts
            cur.execute("SELECT COUNT(*) FROM missing WHERE owner = ? AND repo = ? AND tag = ?", (user, repo, tag))
            facts = facts._replace(tag=TagState(bytes(row[0]), bool(row[1]), int(cur.fetchone()[0])))
            if path is None:
                return facts
            key = (user, repo, tag, path)
            cur.execute("SELECT entry, blob FROM nodes WHERE owner = ? AND repo = ? AND tag = ? AND path = ?", key)
            row = cur.fetchone()
            if row is not None:
                return facts._replace(node=Node(Entry.from_json(_json(bytes(row[0]))), row[1]))
            cur.execute("SELECT entry FROM missing WHERE owner = ? AND repo = ? AND tag = ? AND path = ?", key)
            row = cur.fetchone()
            return facts._replace(expected=Entry.from_json(_json(bytes(row[0])))) if row else facts

    # -- users and repositories ---------------------------------------------------------------------
    def put_user(self, user: str, record: bytes) -> None:
        with self.transaction() as cur:
            if self._insert(cur, "INSERT INTO users (name, record) VALUES (?, ?)", (user, record)) == 0:
                raise Conflict(f"user {user} already exists")
            self._insert(cur, "INSERT INTO usage (owner, bytes) VALUES (?, 0)", (user,))

    def usage(self, user: str) -> int:
        """The bytes ``user``'s tags hold (every node counted, complete tags and pending ones; an object two
        nodes share is counted twice: what a user stores does not depend on what others store)."""
        with self.transaction() as cur:
            cur.execute("SELECT bytes FROM usage WHERE owner = ?", (user,))
            row = cur.fetchone()
        return int(row[0]) if row else 0

    @staticmethod
    def _count(cur: Any, user: str, length: int, quota: int | None) -> None:
        """Add ``length`` to ``user``'s usage in the node's own transaction; the condition holds the quota
        against concurrent writers as well (PostgreSQL runs their transactions side by side)."""
        cur.execute("INSERT INTO usage (owner, bytes) VALUES (?, 0) ON CONFLICT DO NOTHING", (user,))
        if quota is None:
            cur.execute("UPDATE usage SET bytes = bytes + ? WHERE owner = ?", (length, user))
            return
        cur.execute("UPDATE usage SET bytes = bytes + ? WHERE owner = ? AND bytes + ? <= ?",
                    (length, user, length, quota))
        if cur.rowcount != 1:
            cur.execute("SELECT bytes FROM usage WHERE owner = ?", (user,))
            check_quota(user, int(cur.fetchone()[0]), length, quota)

    def _count_usage(self, cur: Any) -> None:
        """Give every user a usage row, counted from their nodes: once, for a store an older release made
        (called where each backend creates its schema, under its start-up lock)."""
        cur.execute("SELECT name FROM users WHERE name NOT IN (SELECT owner FROM usage)")
        for (owner,) in cur.fetchall():
            cur.execute("SELECT entry FROM nodes WHERE owner = ?", (owner,))
            total = sum(Entry.from_json(_json(bytes(row[0]))).length for row in cur.fetchall())
            cur.execute("INSERT INTO usage (owner, bytes) VALUES (?, ?)", (owner, total))

    def put_repo(self, user: str, repo: str, config: bytes) -> None:
        with self.transaction() as cur:
            if self._insert(cur, "INSERT INTO repos (owner, name, config) VALUES (?, ?, ?)",
                            (user, repo, config)) == 0:
                raise Conflict(f"repository {user}/{repo} already exists")

    # -- tags ---------------------------------------------------------------------------------------
    def list_tags(self, user: str, repo: str) -> list[str]:
        with self.transaction() as cur:
            cur.execute("SELECT name FROM tags WHERE owner = ? AND repo = ? AND complete", (user, repo))
            return sorted(row[0] for row in cur.fetchall())

    def put_tag(self, user: str, repo: str, tag: str, entry_bytes: bytes, root: Entry) -> bool:
        """Start publishing ``tag``; True when created, False when the same entry is already pending (a
        resumed publish). Raises :class:`Conflict` when the tag exists complete or with another entry."""
        with self.transaction() as cur:
            inserted = self._insert(cur, "INSERT INTO tags (owner, repo, name, entry, complete) "
                                    "VALUES (?, ?, ?, ?, FALSE)", (user, repo, tag, entry_bytes))
            if inserted:
                cur.execute("INSERT INTO missing (owner, repo, tag, path, entry) VALUES (?, ?, ?, '', ?)",
                            (user, repo, tag, root.encode()))
                return True
            cur.execute("SELECT entry, complete FROM tags WHERE owner = ? AND repo = ? AND name = ?",
                        (user, repo, tag))
            row = cur.fetchone()
        if row is not None and not row[1]:
            if hmac.compare_digest(bytes(row[0]), entry_bytes):
                return False
            raise Conflict(PENDING_CONFLICT)
        raise Conflict("tag already exists")

    def delete_pending_tag(self, user: str, repo: str, tag: str) -> bool:
        """Forget a tag whose tree never completed (its entry, stored nodes and missing list), so that a broken
        publish can be redone; False when there is no such tag. A complete tag is write-once: :class:`Conflict`.
        The objects only its nodes named are removed after it (objects are shared by content: one that
        another tag names, or came to name meanwhile, stays; a crash in between leaves them to :meth:`collect_garbage`)."""
        key = (user, repo, tag)
        with self.transaction() as cur:
            self._lock_tag(cur, user, repo, tag)  # no node of it is being stored meanwhile
            cur.execute("SELECT complete FROM tags WHERE owner = ? AND repo = ? AND name = ?", key)
            row = cur.fetchone()
            if row is None:
                return False
            if row[0]:
                raise Conflict(f"tag {tag} is published completely: it is immutable and cannot be deleted")
            cur.execute("SELECT blob, entry FROM nodes WHERE owner = ? AND repo = ? AND tag = ?", key)
            rows = cur.fetchall()
            blobs = sorted({row[0] for row in rows})
            freed = sum(Entry.from_json(_json(bytes(row[1]))).length for row in rows)
            cur.execute("UPDATE usage SET bytes = bytes - ? WHERE owner = ?", (freed, user))
            cur.execute("DELETE FROM nodes WHERE owner = ? AND repo = ? AND tag = ?", key)
            cur.execute("DELETE FROM missing WHERE owner = ? AND repo = ? AND tag = ?", key)
            cur.execute("DELETE FROM tags WHERE owner = ? AND repo = ? AND name = ?", key)
        if blobs:
            with self.transaction() as cur:
                self._lock_blobs(cur)
                self._drop_blobs(cur, [blob for blob in blobs if not self._named(cur, blob)])
        return True

    def collect_garbage(self, *, dry_run: bool = False) -> tuple[int, int]:
        """Remove every object no node names (left by a crash between storing an object and committing the
        node, or by an older release that kept a deleted tag's objects); ``(objects, bytes)`` removed, or
        that would be with ``dry_run``. Safe while servers run: uploads wait for it, and it for them."""
        with self.transaction() as cur:
            self._lock_blobs(cur)
            lengths = self._blob_lengths(cur)
            cur.execute("SELECT DISTINCT blob FROM nodes")
            orphans = sorted(set(lengths) - {row[0] for row in cur.fetchall()})
            if not dry_run:
                self._drop_blobs(cur, orphans)
        return len(orphans), sum(lengths[key] for key in orphans)

    @staticmethod
    def _named(cur: Any, blob: str) -> bool:
        cur.execute("SELECT 1 FROM nodes WHERE blob = ? LIMIT 1", (blob,))
        return cur.fetchone() is not None

    # -- tree nodes ---------------------------------------------------------------------------------
    def put_node(self, user: str, repo: str, tag: str, path: str, entry: Entry, spool: Spool,
                 children: dict[str, Entry] | None, quota: int | None = None) -> bool:
        """Store a node whose bytes (in ``spool``) were checked against ``entry``; True when this completed
        the tag. ``children``: a directory's entries, which become the nodes still to come. With ``quota``,
        :class:`QuotaExceeded` when the owner's usage would pass it (nothing is stored then)."""
        key = entry.digests["sha-256"].hex()
        with self.transaction() as cur:
            if quota is not None:  # before the object is stored (exact where writes are serial: SQLite)
                cur.execute("SELECT bytes FROM usage WHERE owner = ?", (user,))
                row = cur.fetchone()
                check_quota(user, int(row[0]) if row else 0, entry.length, quota)
            self._store_blob(cur, key, spool, entry.length)  # idempotent; before the lock, so uploads overlap
            self._lock_tag(cur, user, repo, tag)
            cur.execute("DELETE FROM missing WHERE owner = ? AND repo = ? AND tag = ? AND path = ?",
                        (user, repo, tag, path))
            if cur.rowcount != 1:
                raise Conflict("already exists")
            cur.execute("INSERT INTO nodes (owner, repo, tag, path, entry, blob) VALUES (?, ?, ?, ?, ?, ?)",
                        (user, repo, tag, path, entry.encode(), key))
            self._count(cur, user, entry.length, quota)
            for name, child in (children or {}).items():
                cur.execute("INSERT INTO missing (owner, repo, tag, path, entry) VALUES (?, ?, ?, ?, ?)",
                            (user, repo, tag, child_path(path, name), child.encode()))
            cur.execute("SELECT COUNT(*) FROM missing WHERE owner = ? AND repo = ? AND tag = ?", (user, repo, tag))
            if int(cur.fetchone()[0]) == 0:
                cur.execute("UPDATE tags SET complete = TRUE WHERE owner = ? AND repo = ? AND name = ?",
                            (user, repo, tag))
                return True
        return False

    def read(self, node: Node) -> Iterator[bytes]:
        """The node's bytes, checked against its SHA-256 and length as they stream: the last chunk is held
        back until the whole object has matched, so corrupt content is never delivered complete."""
        hasher = hashlib.sha256()
        length = 0
        held: bytes | None = None
        for chunk in self._blob_chunks(node.blob):
            if held is not None:
                yield held
            hasher.update(chunk)
            length += len(chunk)
            held = chunk
        if length != node.entry.length or not hmac.compare_digest(hasher.digest(), node.entry.digests["sha-256"]):
            raise StoreError(f"stored object {node.blob} is corrupt (its bytes no longer match their digest)")
        if held is not None:
            yield held

    def read_all(self, node: Node) -> bytes:
        return b"".join(self.read(node))

    # -- helpers ------------------------------------------------------------------------------------
    @staticmethod
    def _insert(cur: Any, sql: str, params: tuple[Any, ...]) -> int:
        """Insert unless the primary key exists; the number of rows inserted (0 or 1)."""
        cur.execute(sql + " ON CONFLICT DO NOTHING", params)
        return cur.rowcount


def check_quota(user: str, used: int, length: int, quota: int) -> None:
    """:class:`QuotaExceeded` when ``length`` more bytes would take ``user`` past ``quota``."""
    if used + length > quota:
        raise QuotaExceeded(f"{user} stores {used} bytes; this object of {length} bytes would pass the registry's "
                            f"quota of {quota} bytes per user (delete a pending tag, or ask the operator)")


def _json(data: bytes) -> Any:
    import json

    return json.loads(data)
