"""A retraining run that cannot be started is not parked (issue 13): a transient failure (a
dependency down) is retried after a doubling back-off, up to ``monitor.retrain_max_attempts``
starts, then the alert is ``failed``; a permanent one fails it at once. Each failure and its
error are on the alert. Against the real alert store on SQLite and PostgreSQL, with the
database's clock stepped by ``now``; the migration that adds the ``failed`` status keeps an
existing store's rows and ids."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from tests.support.services import store_backends, store_database

from mlplatform.config import PlatformConfig, load_config
from mlplatform.core.alerts import Window
from mlplatform.errors import AlertTransitionError, PipelineRunError, UpstreamError
from mlplatform.monitoring.alert_store import AlertStore
from mlplatform.orchestration.retrain import retrain_pending
from mlplatform.stores import open_engine
from mlplatform.stores.schema import alerts

T0 = 1_800_000_000.0
LEASE, RETRY = 600.0, 60.0


@pytest.fixture(params=store_backends())
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with store_database(request.param, tmp_path, "alerts.db") as u:
        yield u


def setup(tmp_path: Path, url: str) -> tuple[PlatformConfig, AlertStore, int]:
    cfg = load_config("configs/credit-risk.yaml", env={}).with_overrides(
        registry={"tracking_uri": f"sqlite:///{tmp_path}/m.db", "artifact_root": str(tmp_path)},
        monitor={
            "alert_store": url,
            "claim_lease_seconds": LEASE,
            "retrain_retry_seconds": RETRY,
            "retrain_max_attempts": 3,
        },
    )
    store = AlertStore(url, LEASE)
    window = Window(T0 - 3600, T0)
    alert = store.record("credit-risk", window, ["data_drift"], {}, ["1"], T0, 0).alert
    return cfg, store, alert.alert_id


class Failing:
    """A starter that raises ``error`` and counts its calls."""

    def __init__(self, error: Exception) -> None:
        self.error, self.calls = error, 0

    def __call__(self, cfg: PlatformConfig, trigger: str) -> tuple[str, str | None]:
        self.calls += 1
        raise self.error


def test_a_transient_failure_is_retried_with_backoff_then_fails(tmp_path: Path, url: str) -> None:
    cfg, store, alert_id = setup(tmp_path, url)
    start = Failing(UpstreamError("KFP API http://ml-pipeline:8888: connection refused"))
    (first,) = retrain_pending(cfg, start, owner="a", now=T0)
    assert first.action == "retry" and "retry in 60 s" in first.message
    alert = store.get(alert_id)
    assert alert.status == "claimed" and alert.failures == 1
    assert alert.last_error is not None and "connection refused" in alert.last_error
    assert retrain_pending(cfg, start, owner="b", now=T0 + RETRY - 1) == []  # backing off
    (second,) = retrain_pending(cfg, start, owner="b", now=T0 + RETRY + 1)
    assert second.action == "retry" and "retry in 120 s" in second.message  # doubled
    assert retrain_pending(cfg, start, owner="c", now=T0 + RETRY + 100) == []
    (third,) = retrain_pending(cfg, start, owner="c", now=T0 + RETRY + 122)
    assert third.action == "failed" and start.calls == 3  # retrain_max_attempts
    done = store.get(alert_id)
    assert (
        done.status == "failed" and done.failures == 3 and "UpstreamError" in str(done.last_error)
    )
    assert retrain_pending(cfg, start, owner="d", now=T0 + 10 * LEASE) == []  # final
    assert start.calls == 3


def test_a_permanent_failure_fails_the_alert_at_once(tmp_path: Path, url: str) -> None:
    cfg, store, alert_id = setup(tmp_path, url)
    start = Failing(PipelineRunError("task gate failed: rmse 9.1 > 5.0"))
    (out,) = retrain_pending(cfg, start, owner="a", now=T0)
    assert out.action == "failed" and "gate failed" in out.message
    alert = store.get(alert_id)
    assert alert.status == "failed" and alert.failures == 1 and alert.run_id is None
    assert retrain_pending(cfg, start, owner="b", now=T0 + 10 * LEASE) == []
    assert start.calls == 1
    assert not store.claim_for_retrain(alert_id, "b", now=T0 + 10 * LEASE)  # final
    with pytest.raises(AlertTransitionError):
        store.fail(alert_id, "a", "again")


def test_the_migration_keeps_rows_and_ids_and_allows_failed(tmp_path: Path, url: str) -> None:
    """A store at alerts_0001 with rows upgrades in place; ids continue after the highest
    ever given, even a deleted one (SQLite's AUTOINCREMENT survives the table copy)."""
    from alembic import command
    from alembic.config import Config

    from mlplatform.stores.migrate import MIGRATIONS, version_table

    engine = open_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS / "alerts"))
    with engine.begin() as conn:
        cfg.attributes.update(connection=conn, version_table=version_table("alerts"))
        command.upgrade(cfg, "alerts_0001")
        for i in (1, 2, 3):
            conn.execute(
                sa.text(
                    "INSERT INTO alerts (model, window_start, window_end, status, "
                    "reasons, evidence, model_versions, created_at) VALUES "
                    "('m', :s, :e, 'open', '[]', '{}', '[]', 0)"
                ),
                {"s": float(i), "e": float(i + 1)},
            )
        ids = [r[0] for r in conn.execute(sa.text("SELECT alert_id FROM alerts ORDER BY 1"))]
        conn.execute(sa.text("DELETE FROM alerts WHERE alert_id = :i"), {"i": ids[-1]})
    engine.dispose()
    store = AlertStore(url, LEASE)  # migrates to the head
    assert [a.alert_id for a in store.alerts()] == ids[:2]
    assert all(a.failures == 0 and a.last_error is None for a in store.alerts())
    new = store.record("m", Window(100, 200), ["x"], {}, [], 0, 0).alert
    assert new.alert_id > ids[-1]  # a deleted id is never given again (global run names)
    assert store.claim_for_retrain(ids[1], "me", now=1.0)
    store.fail(ids[1], "me", "broken")
    assert store.get(ids[1]).status == "failed"
    with store.engine.begin() as conn, pytest.raises(sa.exc.IntegrityError):
        conn.execute(sa.update(alerts).where(alerts.c.alert_id == ids[0]).values(status="bogus"))
    store.close()
