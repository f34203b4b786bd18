"""The stores' engines and migrations on SQLite and PostgreSQL: a new database migrates to the
head, a file written before migrations existed keeps its rows, racing migrators are safe, and
the migrated schema is exactly the declared one."""

from __future__ import annotations

import doctest
import json
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from tests.support.race import READY, run_together
from tests.support.services import store_backends, store_database

import mlplatform.stores.engine
from mlplatform.core.alerts import Window
from mlplatform.errors import ConfigError, StoreUnavailableError
from mlplatform.monitoring.alert_store import AlertStore
from mlplatform.serving.payloads import PayloadStore
from mlplatform.stores import current_revision, migrate, open_engine, sqlite_path, store_url
from mlplatform.stores.schema import ALERTS, PAYLOADS

#: The DDL the stores wrote before they had migrations (commit 1d54fce), verbatim.
LEGACY_PAYLOADS = """
CREATE TABLE IF NOT EXISTS payloads (
    request_id TEXT PRIMARY KEY, ts REAL, model TEXT, variant TEXT, model_version TEXT,
    endpoint TEXT, status INTEGER, latency_ms REAL, n_instances INTEGER,
    request TEXT, response TEXT, error TEXT
);
CREATE INDEX IF NOT EXISTS payloads_ts ON payloads (ts);
CREATE TABLE IF NOT EXISTS feedback (
    request_id TEXT NOT NULL, ts REAL NOT NULL, label TEXT, PRIMARY KEY (request_id, ts)
);
"""
LEGACY_ALERTS = """
CREATE TABLE IF NOT EXISTS alerts (
    alert_id INTEGER PRIMARY KEY AUTOINCREMENT,
    model TEXT NOT NULL,
    window_start REAL NOT NULL,
    window_end REAL NOT NULL,
    status TEXT NOT NULL
        CHECK (status IN ('open', 'claimed', 'run_started', 'resolved', 'suppressed')),
    reasons TEXT NOT NULL,
    evidence TEXT NOT NULL,
    model_versions TEXT NOT NULL,
    created_at REAL NOT NULL,
    suppressed_by INTEGER REFERENCES alerts (alert_id),
    claim_owner TEXT,
    claimed_at REAL,
    lease_expires REAL,
    claims INTEGER NOT NULL DEFAULT 0,
    run_id TEXT,
    run_started_at REAL,
    resolved_version TEXT,
    resolved_at REAL,
    UNIQUE (model, window_start, window_end)
);
CREATE INDEX IF NOT EXISTS alerts_model_end ON alerts (model, window_end);
CREATE INDEX IF NOT EXISTS alerts_status ON alerts (status);
"""
T0 = 1_767_225_600.0
HEADS = {"payloads": "payloads_0005", "alerts": "alerts_0002"}


@pytest.fixture(params=store_backends())
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with store_database(request.param, tmp_path, "stores.db") as u:
        yield u


def test_module_examples() -> None:
    assert doctest.testmod(mlplatform.stores.engine).failed == 0


def test_urls_and_engines(tmp_path: Path) -> None:
    assert store_url("sqlite:///x.db") == "sqlite:///x.db"
    assert sqlite_path("sqlite:///artifacts/p.db") == Path("artifacts/p.db")
    assert sqlite_path("postgresql://u@h/db") is None and sqlite_path("sqlite://") is None
    engine = open_engine(f"sqlite:///{tmp_path}/new/dir/s.db")  # the folder is created
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    assert open_engine("postgresql://u@h/db").dialect.driver == "psycopg"
    with pytest.raises(ConfigError, match="unsupported store URL"):
        open_engine("mysql://u@h/db")
    with pytest.raises(ConfigError, match="not a store URL"):
        open_engine("artifacts/payloads.db")


def test_an_unreachable_database_is_unavailable() -> None:
    engine = open_engine("postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(StoreUnavailableError, match="alerts store .* cannot be reached"):
        migrate(engine, "alerts")


@pytest.mark.parametrize(("store", "metadata"), [("payloads", PAYLOADS), ("alerts", ALERTS)])
def test_an_empty_database_migrates_to_exactly_the_declared_schema(
    url: str, store: str, metadata: sa.MetaData
) -> None:
    engine = open_engine(url)
    head = migrate(engine, store)  # type: ignore[arg-type]
    assert head == HEADS[store] == migrate(engine, store)  # type: ignore[arg-type]
    with engine.connect() as conn:
        assert current_revision(conn, store) == head
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = compare_metadata(ctx, metadata)
    assert [d for d in diffs if "alembic_version" not in str(d)] == []
    engine.dispose()


def _legacy_file(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.executescript(LEGACY_PAYLOADS + LEGACY_ALERTS)
        conn.execute(
            "INSERT INTO payloads (request_id, ts, model, status, request) VALUES (?, ?, ?, ?, ?)",
            ("old-1", T0, "house-price", 200, '{"instances": [[1.0, 2.0]]}'),
        )
        conn.execute("INSERT INTO feedback VALUES ('old-1', ?, '[3.5]')", (T0 + 1,))
        conn.execute(
            "INSERT INTO alerts (model, window_start, window_end, status, reasons, evidence, "
            "model_versions, created_at, claim_owner, lease_expires, claims) "
            "VALUES ('house-price', ?, ?, 'claimed', ?, '{}', ?, ?, 'old-trigger', ?, 1)",
            (T0, T0 + 3600, '["data_drift"]', '["3"]', T0 + 3600, T0 + 7200),
        )
    sqlite3.connect(path).close()


def test_a_file_from_before_migrations_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "legacy.db"  # payloads and alerts in one file: the worst case
    _legacy_file(path)
    with PayloadStore(path) as payloads:
        got = payloads.requests(0, 1e12)
        assert list(got["request_id"]) == ["old-1"] and got["label"].iloc[0] == [3.5]
        payloads.add_feedback("old-1", [4.0])
    with AlertStore(f"sqlite:///{path}", lease_seconds=60) as alerts:
        (old,) = alerts.alerts()
        assert (old.alert_id, old.status, old.claim_owner) == (1, "claimed", "old-trigger")
        assert alerts.claim_for_retrain(1, "new-trigger", now=T0 + 7200)  # the old lease ran out
        new = alerts.record("house-price", Window(T0 + 9e5, T0 + 9e5 + 3600), [], {}, [], T0, 0)
        assert new.alert.alert_id == 2
    with sqlite3.connect(path) as conn:
        versions = {
            t: conn.execute(f"SELECT version_num FROM alembic_version_{t}").fetchone()[0]
            for t in ("payloads", "alerts")
        }
        labels = conn.execute("SELECT label FROM feedback ORDER BY ts").fetchall()
    assert versions == HEADS
    assert [json.loads(x) for (x,) in labels] == [[3.5], [4.0]]


MIGRATE = f"""
import sys
from mlplatform.stores import migrate, open_engine
engine = open_engine(sys.argv[1])
{READY}
print(migrate(engine, "payloads"), migrate(engine, "alerts"))
"""


def test_processes_starting_at_once_migrate_once(url: str) -> None:
    outputs = set(run_together([[sys.executable, "-c", MIGRATE, url]] * 4))  # exit codes 0
    assert outputs == {"{payloads} {alerts}".format(**HEADS)}
    engine = open_engine(url)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT COUNT(*) FROM alembic_version_alerts").scalar()
    assert rows == 1
    engine.dispose()
