"""Alembic migrations, one chain per store (``payloads/``, ``alerts/``), each with its own
version table (``alembic_version_<store>``); run by :func:`mlplatform.stores.migrate`.

A new revision goes in ``<store>/versions/`` with ``down_revision`` set to the current head;
use ``op.batch_alter_table`` for changes SQLite cannot ALTER (the environment renders batch
mode on SQLite)."""

from __future__ import annotations


def run_env() -> None:
    """The body of each chain's ``env.py``: migrate on the connection ``migrate`` passes."""
    from alembic import context

    conn = context.config.attributes["connection"]
    context.configure(
        connection=conn,
        version_table=context.config.attributes["version_table"],
        render_as_batch=conn.dialect.name == "sqlite",
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()
