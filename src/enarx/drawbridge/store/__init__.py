"""Registry storage behind one interface (:class:`~enarx.drawbridge.store.base.Store`).

* ``LocalStore`` (the embedded default): metadata in SQLite, object bytes as files named by their
  SHA-256 in the store directory, written to a temporary file and renamed into place only after their
  digests were checked, so a crash mid-upload leaves no visible partial object.
* ``PostgresStore`` (``--database postgresql://…``): metadata and object bytes in PostgreSQL, so several
  Drawbridge processes behind a load balancer serve one registry.
"""

from __future__ import annotations

from enarx.drawbridge.store.base import Conflict, QuotaExceeded, Store, StoreError, TagState


def open_store(directory: str | None, database: str | None) -> Store:
    """The store a server was configured with: PostgreSQL when ``database`` is given, else ``directory``."""
    if database:
        from enarx.drawbridge.store.postgres import PostgresStore

        return PostgresStore(database)
    if not directory:
        raise StoreError("give --store DIR (embedded registry) or --database postgresql://…")
    from enarx.drawbridge.store.local import LocalStore

    return LocalStore(directory)


__all__ = ["Conflict", "QuotaExceeded", "Store", "StoreError", "TagState", "open_store"]
