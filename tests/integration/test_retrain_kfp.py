"""The retrain trigger's ``--backend kfp`` starter against the EMULATED KFP API
(``tests/support/kfp_api.py``, the REST calls ``kfp.Client`` 2.17 makes): each alert starts one
run named ``alert-<model>-<id>``, however often the trigger re-runs or crashes after starting it
(README, "Retrain trigger")."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.kfp_api import KfpApi, kfp_api

from mlplatform.config import PlatformConfig, load_config
from mlplatform.core.alerts import Window
from mlplatform.monitoring.alert_store import AlertStore
from mlplatform.orchestration.retrain import kfp_starter, retrain_pending, trigger_name

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_800_000_000.0
LEASE = 600.0


@pytest.fixture
def api() -> Iterator[KfpApi]:
    with kfp_api() as state:
        yield state


def _cfg(tmp_path: Path, alert_store: str) -> PlatformConfig:
    return load_config(ROOT / "configs/credit-risk.yaml", env={}).with_overrides(
        registry={"tracking_uri": f"sqlite:///{tmp_path}/m.db", "artifact_root": str(tmp_path)},
        monitor={"alert_store": alert_store, "claim_lease_seconds": LEASE},
    )


def test_a_second_start_for_the_same_trigger_finds_the_run(tmp_path: Path, api: KfpApi) -> None:
    secret_store = "postgresql://mlplatform:s3cret@stores:5432/stores"
    cfg = _cfg(tmp_path, secret_store)
    start = kfp_starter(api.url)
    first, pending = start(cfg, "alert-credit-risk-1")
    again, _ = start(cfg, "alert-credit-risk-1")
    assert pending is None and again == first
    (run,) = api.runs
    assert (run["run_id"], run["display_name"]) == (first, "alert-credit-risk-1")
    params = api.run_parameters(run)
    assert params["trigger"] == "alert-credit-risk-1"
    assert "s3cret" not in params["config_json"]  # the stores' password stays off the run
    assert json.loads(params["config_json"])["model_name"] == "credit-risk"
    other, _ = start(cfg, "alert-credit-risk-2")  # another alert: its own run
    assert other != first and [r["display_name"] for r in api.runs] == [
        "alert-credit-risk-1",
        "alert-credit-risk-2",
    ]


def test_a_trigger_that_died_after_starting_the_run_starts_no_second(
    tmp_path: Path, api: KfpApi
) -> None:
    """Trigger a claims the alert and starts the KFP run, then dies before recording it; once
    the lease expires trigger b claims the alert again and records a's run instead of a new one."""
    cfg = _cfg(tmp_path, f"sqlite:///{tmp_path}/alerts.db")
    store = AlertStore(cfg.monitor.alert_store, LEASE)
    alert = store.record(
        "credit-risk", Window(T0 - 3600, T0), ["data drift"], {}, ["1"], T0, 0
    ).alert
    assert store.claim_for_retrain(alert.alert_id, "a", T0)
    started, _ = kfp_starter(api.url)(cfg, trigger_name("credit-risk", alert.alert_id))
    assert store.get(alert.alert_id).run_id is None  # a died here

    (outcome,) = retrain_pending(cfg, kfp_starter(api.url), owner="b", now=T0 + 2 * LEASE)
    assert (outcome.action, outcome.run_id) == ("started", started)
    assert [r["run_id"] for r in api.runs] == [started]
    assert store.get(alert.alert_id).run_id == started
    assert retrain_pending(cfg, kfp_starter(api.url), owner="c", now=T0 + 4 * LEASE) == []
    assert len(api.runs) == 1
