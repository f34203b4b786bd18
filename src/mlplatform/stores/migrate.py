"""Bringing a store's database to the newest schema, on open, from any process.

:func:`migrate` runs the store's Alembic chain (``migrations/<store>/``, version table
``alembic_version_<store>``) to its head in one transaction that no other migrator can enter:
on PostgreSQL under a transaction-level advisory lock, on SQLite under ``BEGIN IMMEDIATE``.
Several pods or processes that start at once therefore migrate one after the other, and the
later ones find the head already there. A database already at the head costs one read,
without the lock: revisions only move forward, so a store seen at the head stays there.
"""

from __future__ import annotations

import threading
from functools import cache
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mlplatform.errors import ConfigError, StoreUnavailableError
from mlplatform.stores.engine import begin_write

Store = Literal["payloads", "alerts"]
STORES: tuple[Store, ...] = ("payloads", "alerts")
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: pg_advisory_xact_lock keys, one per store (any constant bigint the platform owns).
LOCK_KEYS: dict[str, int] = {"payloads": 0x6D6C70_0001, "alerts": 0x6D6C70_0002}


#: Alembic keeps the running migration in module-level proxies (``alembic.op``,
#: ``alembic.context``), so two upgrades in one process at once, ours or MLflow's (it migrates its
#: SQLite database when a client first opens it), break each other. Every upgrade in this
#: process, and the registry's client creation, hold this lock.
ALEMBIC_LOCK = threading.RLock()


def version_table(store: str) -> str:
    return f"alembic_version_{store}"


def migrate(engine: Engine, store: Store) -> str:
    """Upgrade ``store``'s tables in ``engine``'s database to the newest revision; its id.

    Idempotent, and safe when several processes call it at once (see the module docstring).
    """
    from alembic import command
    from alembic.config import Config

    if store not in STORES:
        raise ConfigError(f"unknown store {store!r}: one of {list(STORES)}")
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS / store))
    try:
        with engine.connect() as conn:
            seen = current_revision(conn, store)
        if seen is not None and seen == head(store):
            return seen
        with ALEMBIC_LOCK, begin_write(engine) as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(LOCK_KEYS[store])))
            cfg.attributes.update(connection=conn, version_table=version_table(store))
            command.upgrade(cfg, "head")
            return current_revision(conn, store) or ""
    except sa.exc.OperationalError as exc:
        raise StoreUnavailableError(
            f"the {store} store at {engine.url} cannot be reached or migrated: {exc.orig}"
        ) from None


@cache
def head(store: Store) -> str:
    """The newest revision of ``store``'s chain (read once per process)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS / store))
    return str(ScriptDirectory.from_config(cfg).get_current_head())


def current_revision(conn: sa.Connection, store: str) -> str | None:
    """The revision ``store``'s tables are at in this database (None before any migration):
    the one row of its version table, read directly (Alembic's own reader costs milliseconds
    that every short-lived job would pay on opening a store)."""
    name = version_table(store)
    if conn.dialect.name == "postgresql":  # the dialect's has_table costs a few catalog joins
        exists = sa.select(sa.func.to_regclass(name).is_not(None))
    else:
        master = sa.table("sqlite_master", sa.column("type"), sa.column("name"))
        exists = sa.select(sa.exists().where(master.c.type == "table", master.c.name == name))
    if not conn.execute(exists).scalar_one():
        return None
    query: sa.Select[Any] = sa.select(sa.column("version_num")).select_from(sa.table(name))
    rows = [str(r) for r in conn.execute(query).scalars()]
    return rows[0] if len(rows) == 1 else None
