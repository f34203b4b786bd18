"""Opening a store's database from its URL, and the few things the two backends spell apart.

``sqlite:///<file>`` (the embedded default) opens the file in WAL mode with
``synchronous=FULL`` and a busy timeout, under transactions this module begins itself
(``BEGIN``, or ``BEGIN IMMEDIATE`` for :func:`begin_write`, which takes SQLite's write lock
from the first statement); ``postgresql://...`` (the cluster) opens a pool with pre-ping and a
connect timeout, through psycopg 3.

>>> store_url(Path("/tmp/a.db"))
'sqlite:////tmp/a.db'
>>> store_url("postgresql://u@db:5432/mlplatform")
'postgresql+psycopg://u@db:5432/mlplatform'
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from numpy.typing import NDArray
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from mlplatform.errors import ConfigError

BUSY_TIMEOUT_SECONDS = 30
CONNECT_TIMEOUT_SECONDS = 10


def store_url(target: str | Path) -> str:
    """The SQLAlchemy URL of a store: a ``Path`` is a SQLite file; ``postgresql://`` gets the
    psycopg 3 driver (the only PostgreSQL driver installed)."""
    if isinstance(target, Path):
        return f"sqlite:///{target}"
    if target.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + target.split("://", 1)[1]
    return target


def sqlite_path(url: str | Path) -> Path | None:
    """The file of a ``sqlite:///`` URL; None for another backend or an in-memory database."""
    return _file(_parse(url))


def _file(parsed: sa.URL) -> Path | None:
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _parse(url: str | Path) -> sa.URL:
    try:
        return sa.make_url(store_url(url))
    except sa.exc.ArgumentError as exc:
        raise ConfigError(f"not a store URL: {url!r} ({exc})") from None


def open_engine(url: str | Path) -> Engine:
    """An engine for a store URL (``sqlite:///...`` or ``postgresql://...``)."""
    parsed = _parse(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        engine = sa.create_engine(
            parsed, pool_pre_ping=True, connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS}
        )
        # executemany of an INSERT as multi-row INSERT ... VALUES pages, not one per row
        engine.dialect.use_insertmanyvalues_wo_returning = True
        return engine
    if backend != "sqlite":
        raise ConfigError(
            f"unsupported store URL {parsed}: use sqlite:///<file> or postgresql://<server>/<db>"
        )
    path = _file(parsed)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(parsed, connect_args={"timeout": BUSY_TIMEOUT_SECONDS})
    sa.event.listen(engine, "connect", _sqlite_connect)
    sa.event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # this module emits BEGIN itself (_sqlite_begin)
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_SECONDS * 1000}")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


@contextmanager
def begin_write(engine: Engine) -> Iterator[Connection]:
    """One read-decide-write transaction: on SQLite it holds the write lock from its first
    statement (``BEGIN IMMEDIATE``), so concurrent writers queue instead of failing; on
    PostgreSQL a plain transaction (callers lock rows or keys themselves)."""
    with engine.execution_options(sqlite_begin="IMMEDIATE").begin() as conn:
        yield conn


#: Planner settings of a bulk read on PostgreSQL, for its transaction only: JIT compilation
#: costs more than it saves on a bulk scan; the window reads aggregate rows into a few groups,
#: which a hash does without sorting the rows; one worker per query (the reader runs its
#: queries side by side itself, and keeps each aggregate's input in one order).
PG_READ_SETTINGS = {"jit": "off", "enable_sort": "off", "max_parallel_workers_per_gather": "0"}


def _read_settings(conn: Connection) -> None:
    """:data:`PG_READ_SETTINGS` for the rest of ``conn``'s transaction (``SET LOCAL``, all
    in one round trip)."""
    settings = ", ".join(f"set_config('{k}', '{v}', true)" for k, v in PG_READ_SETTINGS.items())
    conn.exec_driver_sql(f"SELECT {settings}")


def bulk_rows(conn: Connection, query: sa.Select[Any], settings: bool = True) -> NDArray[Any]:
    """Every row of ``query`` as one ``(rows, columns)`` object array, fetched through the
    driver's own cursor: SQLAlchemy's ``Row`` objects cost ten times the query itself on a bulk
    read (100k rows into numpy: ~1.5 s against ~0.15 s). Values are what the driver returns
    (str, int, float, bytes, None; no type processing); a driver error is raised as
    SQLAlchemy's ``DBAPIError``. On PostgreSQL the rows come in binary format, under
    :data:`PG_READ_SETTINGS` (set here unless ``settings`` is False: the caller set them for
    this transaction already)."""
    compiled = query.compile(dialect=conn.dialect)
    params: Any = compiled.params
    options: dict[str, Any] = {}
    if conn.dialect.name == "postgresql":
        if settings:
            _read_settings(conn)
        options["binary"] = True
    else:  # sqlite3 takes positional parameters
        params = [params[k] for k in compiled.positiontup or ()]
    dbapi_error = conn.dialect.loaded_dbapi.Error
    cursor = conn.connection.driver_connection.cursor(**options)  # type: ignore[union-attr]
    try:
        cursor.execute(str(compiled), params)
        rows = cursor.fetchall()
    except dbapi_error as exc:
        raise sa.exc.DBAPIError.instance(str(compiled), params, exc, dbapi_error) from exc
    finally:
        cursor.close()
    table = np.empty((len(rows), len(query.selected_columns)), dtype=object)
    if rows:
        table[:] = rows
    return table


def bulk_read(
    engine: Engine, queries: Sequence[sa.Select[Any]], parallel: bool = True
) -> list[NDArray[Any]]:
    """The rows of each query as a ``(rows, columns)`` object array (:func:`bulk_rows`), all
    read from one snapshot of the database.

    On PostgreSQL the queries run at once, one connection each, so the server works on them
    on separate cores while this process decodes; the connections read in
    ``REPEATABLE READ`` transactions that share the first one's snapshot
    (``pg_export_snapshot`` / ``SET TRANSACTION SNAPSHOT``), so together they see exactly
    what one transaction would. Elsewhere, or without ``parallel``, they run one after the
    other in one transaction (``REPEATABLE READ`` on PostgreSQL: one snapshot).
    """
    if engine.dialect.name != "postgresql" or len(queries) < 2 or not parallel:
        with engine.connect() as conn:
            if engine.dialect.name != "postgresql":
                return [bulk_rows(conn, q) for q in queries]
            if len(queries) > 1:
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            _read_settings(conn)
            return [bulk_rows(conn, q, settings=False) for q in queries]
    with engine.connect() as first:
        first = first.execution_options(isolation_level="REPEATABLE READ")
        snapshot = first.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one()

        def read(query: sa.Select[Any]) -> NDArray[Any]:
            with engine.connect() as conn:
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
                conn.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
                return bulk_rows(conn, query)

        with ThreadPoolExecutor(len(queries) - 1) as pool:
            rest = [pool.submit(read, q) for q in queries[1:]]
            head = bulk_rows(first, queries[0])  # while the others run
            return [head, *(f.result() for f in rest)]


def clock(dialect: str, now: float | None = None) -> sa.ColumnElement[float]:
    """Unix seconds on the database's clock (``now`` instead, when given: tests use it to step
    time deterministically). PostgreSQL: the statement's start; SQLite: the statement's 'now'."""
    if now is not None:
        return sa.literal(now, sa.Double())
    if dialect == "postgresql":
        return sa.cast(sa.extract("epoch", sa.func.statement_timestamp()), sa.Double())
    return sa.literal_column("((julianday('now') - 2440587.5) * 86400.0)", sa.Double())


def insert_for(dialect: str, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
    """The dialect's INSERT, which has ``on_conflict_do_nothing``/``on_conflict_do_update``."""
    return postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)


def greatest(a: sa.ColumnElement[Any], b: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """The larger of two values, the same on both backends (SQLite has no GREATEST)."""
    return sa.case((a > b, a), else_=b)
