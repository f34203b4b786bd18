"""The retrain trigger against the real alert store and a real MLflow registry: one run per
alert, even when the trigger re-runs, races, or crashes midway."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from mlplatform.config import PlatformConfig, load_config
from mlplatform.core.alerts import Window
from mlplatform.monitoring.alert_store import AlertStore
from mlplatform.orchestration.retrain import retrain_pending, trigger_name, version_for_trigger
from mlplatform.registry.mlflow_registry import Registry
from mlplatform.stages import generate_data, train_job

T0 = 1_800_000_000.0
LEASE = 600.0


@pytest.fixture()
def world(tmp_path: Path) -> tuple[PlatformConfig, Path, AlertStore, int]:
    cfg = load_config("configs/credit-risk.yaml", env={}).with_overrides(
        artifacts_dir=str(tmp_path / "artifacts"),  # type: ignore[arg-type]
        data={"rows": 300, "data_dir": str(tmp_path / "data")},
        train={"epochs": 50},
        registry={"tracking_uri": f"sqlite:///{tmp_path}/m.db", "artifact_root": str(tmp_path)},
        monitor={"alert_db": str(tmp_path / "alerts.db"), "claim_lease_seconds": LEASE},
    )
    model = train_job(cfg, generate_data(cfg)).files["model"]
    store = AlertStore(cfg.monitor.alert_db, LEASE)
    alert = store.record(
        "credit-risk",
        Window(T0 - 3600, T0),
        ["data drift"],
        {"features": ["income_vnd"]},
        ["1"],
        T0,
        0,
    ).alert
    return cfg, model, store, alert.alert_id


class Runs:
    """A pipeline stand-in that registers a real model version tagged with its trigger."""

    def __init__(self, cfg: PlatformConfig, model: Path, crash: bool = False) -> None:
        self.cfg, self.model, self.crash, self.calls = cfg, model, crash, 0
        self.lock = threading.Lock()

    def __call__(self, cfg: PlatformConfig, trigger: str) -> tuple[str, str | None]:
        with self.lock:
            self.calls += 1
        info = Registry(cfg.registry).log_and_register(self.model, {}, {}, [], {"trigger": trigger})
        if self.crash:  # the process dies after the run registered, before it was recorded
            raise SystemExit("simulated crash")
        return f"run-{trigger}", info.version


def test_one_run_per_alert_even_when_the_trigger_reruns(world) -> None:  # type: ignore[no-untyped-def]
    cfg, model, store, alert_id = world
    runs = Runs(cfg, model)
    first = retrain_pending(cfg, runs, owner="a", now=T0)
    again = retrain_pending(cfg, runs, owner="b", now=T0 + 10 * LEASE)
    assert [o.action for o in first] == ["started"] and again == []
    assert runs.calls == 1
    done = store.get(alert_id)
    assert done.status == "resolved" and done.run_id == f"run-{trigger_name(alert_id)}"
    assert done.resolved_version == version_for_trigger(cfg, trigger_name(alert_id)) == "1"


def test_crash_between_alert_and_run_start_is_retried_once_after_the_lease(world) -> None:  # type: ignore[no-untyped-def]
    cfg, model, store, alert_id = world
    assert store.claim_for_retrain(alert_id, "crashed-trigger", now=T0)  # then it died
    runs = Runs(cfg, model)
    assert retrain_pending(cfg, runs, owner="b", now=T0 + LEASE / 2) == []  # lease still held
    out = retrain_pending(cfg, runs, owner="b", now=T0 + LEASE + 1)
    assert [o.action for o in out] == ["started"] and runs.calls == 1
    assert retrain_pending(cfg, runs, owner="c", now=T0 + 5 * LEASE) == []
    assert runs.calls == 1


def test_crash_after_the_run_registered_is_recovered_without_a_second_run(world) -> None:  # type: ignore[no-untyped-def]
    cfg, model, store, alert_id = world
    crashing = Runs(cfg, model, crash=True)
    with pytest.raises(SystemExit):
        retrain_pending(cfg, crashing, owner="a", now=T0)
    runs = Runs(cfg, model)
    out = retrain_pending(cfg, runs, owner="b", now=T0 + LEASE + 1)
    assert [o.action for o in out] == ["recovered"] and out[0].version == "1"
    assert crashing.calls == 1 and runs.calls == 0
    assert store.get(alert_id).status == "resolved"


def test_racing_triggers_start_exactly_one_run(world) -> None:  # type: ignore[no-untyped-def]
    cfg, model, _, _ = world
    runs = Runs(cfg, model)
    threads = [
        threading.Thread(target=retrain_pending, args=(cfg, runs, f"t{i}", T0)) for i in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert runs.calls == 1
