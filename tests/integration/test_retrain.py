"""The retrain trigger against the real alert store (SQLite and PostgreSQL) and a real MLflow
registry: one run per alert, even when the trigger re-runs, races in threads or processes,
crashes midway, or takes longer than the lease to start a run."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.race import READY, run_together
from tests.support.services import store_backends, store_database

from mlplatform.config import PlatformConfig, load_config
from mlplatform.core.alerts import Window
from mlplatform.monitoring.alert_store import AlertStore
from mlplatform.orchestration.retrain import retrain_pending, trigger_name, version_for_trigger
from mlplatform.registry.mlflow_registry import Registry
from mlplatform.stages import generate_data, train_job

T0 = 1_800_000_000.0
LEASE = 600.0


@pytest.fixture(params=store_backends())
def world(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[PlatformConfig, Path, AlertStore, int]]:
    with store_database(request.param, tmp_path, "alerts.db") as url:
        yield _world(tmp_path, url)


def _world(tmp_path: Path, alert_store: str) -> tuple[PlatformConfig, Path, AlertStore, int]:
    cfg = load_config("configs/credit-risk.yaml", env={}).with_overrides(
        artifacts_dir=str(tmp_path / "artifacts"),  # type: ignore[arg-type]
        data={"rows": 300, "data_dir": str(tmp_path / "data")},
        train={"epochs": 50},
        registry={"tracking_uri": f"sqlite:///{tmp_path}/m.db", "artifact_root": str(tmp_path)},
        monitor={"alert_store": alert_store, "claim_lease_seconds": LEASE},
    )
    model = train_job(cfg, generate_data(cfg)).files["model"]
    store = AlertStore(cfg.monitor.alert_store, LEASE)
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
    trigger = trigger_name("credit-risk", alert_id)
    assert trigger == f"alert-credit-risk-{alert_id}"
    assert done.status == "resolved" and done.run_id == f"run-{trigger}"
    assert done.resolved_version == version_for_trigger(cfg, trigger) == "1"


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
    errors: list[BaseException] = []

    def trigger(owner: str) -> None:
        try:
            retrain_pending(cfg, runs, owner, T0)
        except BaseException as exc:  # a thread's exception would otherwise vanish
            errors.append(exc)

    threads = [threading.Thread(target=trigger, args=(f"t{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and runs.calls == 1


RACE = f"""
import sys, time
from pathlib import Path
from mlplatform.config import PlatformConfig
from mlplatform.orchestration.retrain import retrain_pending
import mlplatform.registry.mlflow_registry  # imported before the start: a tight race
cfg = PlatformConfig.from_json(Path(sys.argv[1]).read_text())
starts = Path(sys.argv[2])
def start(cfg, trigger):
    with starts.open("a") as f:
        f.write(trigger + "\\n")
    time.sleep(1.0)  # still starting while the others try
    return "run-" + sys.argv[3], None
{READY}
print(len(retrain_pending(cfg, start, owner=sys.argv[3])))
"""


def test_racing_trigger_processes_start_exactly_one_run(world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg, _, store, alert_id = world
    version_for_trigger(cfg, "warm-up")  # the registry's database exists before the race
    (tmp_path / "cfg.json").write_text(cfg.to_json())
    starts = tmp_path / "starts.txt"
    cfg_json = str(tmp_path / "cfg.json")
    outputs = sorted(
        run_together(
            [[sys.executable, "-c", RACE, cfg_json, str(starts), f"p{i}"] for i in range(3)]
        )
    )
    assert outputs == ["0", "0", "1"]
    assert starts.read_text().split() == [trigger_name("credit-risk", alert_id)]
    assert store.get(alert_id).status == "run_started"


def test_a_slow_start_keeps_its_claim_by_heartbeat(world) -> None:  # type: ignore[no-untyped-def]
    cfg, _, store, alert_id = world
    lease = 1.0
    cfg = cfg.with_overrides(monitor={"claim_lease_seconds": lease})
    starts: list[str] = []
    started = threading.Event()

    def slow_start(cfg: PlatformConfig, trigger: str) -> tuple[str, str | None]:
        starts.append(trigger)
        started.set()
        time.sleep(3.5 * lease)  # far beyond the lease: only the heartbeat keeps the claim
        return "run-slow", None

    first = threading.Thread(target=retrain_pending, args=(cfg, slow_start, "slow"))
    first.start()
    assert started.wait(60)
    while first.is_alive():  # another trigger keeps trying, on the database's clock
        assert retrain_pending(cfg, slow_start, owner="eager") == []
        time.sleep(0.1)
    first.join()
    done = store.get(alert_id)
    assert starts == [trigger_name("credit-risk", alert_id)] and done.claims == 1
    assert (done.status, done.run_id, done.claim_owner) == ("run_started", "run-slow", "slow")
    assert done.lease_expires is not None and done.claimed_at is not None
    assert done.lease_expires > done.claimed_at + 2 * lease  # extended while it started
