"""The platform's shared stores on SQLAlchemy: the payload log and the alert store.

A store is chosen by its URL (``serve.payload_store``, ``monitor.alert_store``):
``sqlite:///artifacts/payloads.db`` in the embedded default (a file, nothing to run),
``postgresql://user:pass@host:5432/db`` on the cluster (one database every pod shares).
One schema serves both (:mod:`.schema`), versioned by Alembic migrations inside this package
that every store runs on open (:func:`migrate`), so an upgrade never loses rows.

Example::

    engine = open_engine("sqlite:///artifacts/alerts.db")
    migrate(engine, "alerts")  # idempotent; safe when several processes start at once
    with begin_write(engine) as conn:
        conn.execute(sa.update(alerts).where(...).values(lease_expires=clock("sqlite") + 60))

Layout: :mod:`.engine` (URLs, engines, transactions, the database clock, dialect helpers),
:mod:`.schema` (tables), :mod:`.migrate` and ``migrations/<store>/versions/`` (revisions).
"""

from mlplatform.stores.engine import (
    begin_write,
    bulk_read,
    bulk_rows,
    clock,
    greatest,
    insert_for,
    open_engine,
    sqlite_path,
    store_url,
)
from mlplatform.stores.migrate import STORES, Store, current_revision, migrate

__all__ = [
    "STORES",
    "Store",
    "begin_write",
    "bulk_read",
    "bulk_rows",
    "clock",
    "current_revision",
    "greatest",
    "insert_for",
    "migrate",
    "open_engine",
    "sqlite_path",
    "store_url",
]
