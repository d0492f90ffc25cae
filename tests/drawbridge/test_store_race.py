"""Two servers storing the last two nodes of a tag at the same moment: exactly one of them completes the tag
(PostgreSQL runs transactions concurrently; neither may count the other's uncommitted node as missing)."""

from __future__ import annotations

import threading
from contextlib import contextmanager

from _fixtures import postgres

from enarx.drawbridge.content import CT_DIRECTORY, CT_OCTETS, Entry, encode_directory
from enarx.drawbridge.store.postgres import PostgresStore


class _Aligned(PostgresStore):
    """Both writers count the missing nodes at the same moment (or as close as their locks allow)."""

    barrier: tuple[threading.Barrier, threading.Barrier] | None = None

    @contextmanager
    def transaction(self):
        with super().transaction() as cur:
            yield _Waiting(cur, self.barrier)


def _wait(barrier: threading.Barrier) -> None:
    try:
        barrier.wait(timeout=3)  # a writer blocked by the other's lock never arrives: go on alone
    except threading.BrokenBarrierError:
        pass


class _Waiting:
    def __init__(self, cursor, barrier):
        self.cursor, self.barrier = cursor, barrier
        self.cur = cursor.cur  # the psycopg cursor (COPY of object chunks)

    def execute(self, sql, params=()):
        counting = self.barrier is not None and sql.startswith("SELECT COUNT(*) FROM missing")
        if counting:
            _wait(self.barrier[0])  # both have deleted their own missing row…
        self.cursor.execute(sql, params)
        if counting:
            _wait(self.barrier[1])  # …and both have counted before either commits

    def __getattr__(self, name):
        return getattr(self.cursor, name)


def test_last_two_nodes_stored_at_once_complete_the_tag(postgres) -> None:
    url = postgres.new_database()
    stores = [_Aligned(url), _Aligned(url)]  # two servers on one database
    a, b = Entry.of(b"first", CT_OCTETS), Entry.of(b"second", CT_OCTETS)
    directory = encode_directory({"a": a, "b": b})
    root = Entry.of(directory, CT_DIRECTORY)
    stores[0].put_user("alice", b'{"subject":"alice"}')
    stores[0].put_repo("alice", "app", b'{"public":true}')
    stores[0].put_tag("alice", "app", "1.0.0", root.encode(), root)

    def put(store: PostgresStore, path: str, entry: Entry, data: bytes, children=None) -> None:
        spool = store.new_spool()
        spool.write(data)
        spool.finish()
        store.put_node("alice", "app", "1.0.0", path, entry, spool, children)

    put(stores[0], "", root, directory, {"a": a, "b": b})
    barrier = (threading.Barrier(2), threading.Barrier(2))
    for store in stores:
        store.barrier = barrier
    threads = [threading.Thread(target=put, args=(stores[0], "a", a, b"first")),
               threading.Thread(target=put, args=(stores[1], "b", b, b"second"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for store in stores:
        store.barrier = None
    facts = stores[0].lookup("alice", "app", "1.0.0", None)
    assert facts.tag is not None and facts.tag.missing == 0
    assert facts.tag.complete, "every node is stored but no writer completed the tag"
    assert stores[1].list_tags("alice", "app") == ["1.0.0"]
    for store in stores:
        store.close()
