"""The monitor job on a real payload log: requests logged through PayloadStore, one hour from
the training world and two from a shifted one; Evidently's report agrees with our KS."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
from scipy import stats

from mlplatform.config import MonitorConfig, load_config
from mlplatform.core.alerts import Window
from mlplatform.core.datasets import house_price_truth
from mlplatform.core.drift import detect_drift
from mlplatform.core.training import generate, split_frame
from mlplatform.errors import (
    DataError,
    ModelVersionNotFoundError,
    PayloadWindowError,
    ReferenceNotFoundError,
)
from mlplatform.monitoring.alert_store import AlertStore
from mlplatform.monitoring.evidently_report import column_scores, run_preset
from mlplatform.monitoring.monitor import MonitorResult, reference_frame, run_monitor
from mlplatform.monitoring.payload_window import frame_window
from mlplatform.monitoring.reports import read_report
from mlplatform.registry.mlflow_registry import CHAMPION, Registry
from mlplatform.serving.payloads import PayloadRecord, PayloadStore
from mlplatform.stages import generate_data, train_job
from mlplatform.stages.register import reference_sample

ROOT = Path(__file__).resolve().parents[2]
CFG = load_config(ROOT / "configs/house-price.yaml", env={})  # not the cwd, not the environment
HOUR = 3600.0
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
SHIFTS = {0: 0.0, 1: 1.0, 2: 1.0}  # hour → world shift


def _requests(hour: int, rows: int = 300) -> list[PayloadRecord]:
    """One instance per request, predicted by the training world's truth (a perfect model)."""
    df = generate(
        CFG.data.model_copy(update={"shift": SHIFTS[hour], "seed": 10 + hour, "rows": rows})
    )
    pred = house_price_truth(df, 0.0)
    out = []
    for i, row in enumerate(df[list(CFG.feature_names)].to_dict("records")):
        body = orjson.dumps({"instances": [row]}).decode()
        reply = orjson.dumps({"predictions": [float(pred[i])]}).decode()
        version = "3" if i % 4 else "4"  # a canary serves a quarter
        out.append(
            PayloadRecord(
                f"h{hour}-{i}",
                T0 + hour * HOUR + i,
                CFG.model_name,
                "stable",
                version,
                "predict",
                200,
                2.0 + i % 10,
                1,
                body,
                reply,
            )
        )
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    tmp = tmp_path_factory.mktemp("monitor")
    train_val = split_frame(CFG, generate(CFG.data))
    val = train_val.val
    baseline = float(np.sqrt(np.mean((house_price_truth(val) - val["price_vnd"]) ** 2)))
    db = tmp / "payloads.db"
    with PayloadStore(db) as store:
        for hour in SHIFTS:
            records = _requests(hour)
            for r in records:
                store.log(r)
            labels = generate(
                CFG.data.model_copy(update={"shift": SHIFTS[hour], "seed": 10 + hour, "rows": 300})
            )
            store.add_feedback_many(
                [
                    (r.request_id, float(labels["price_vnd"][i]))
                    for i, r in enumerate(records)
                    if i % 2
                ]
            )
        failed = PayloadRecord(
            "h0-err",
            T0 + 10.5,
            CFG.model_name,
            "stable",
            "3",
            "predict",
            503,
            9.0,
            1,
            None,
            None,
            "boom",
        )
        explain = PayloadRecord(
            "h0-x", T0 + 11.5, CFG.model_name, "stable", "3", "explain", 200, 800.0, 1, None, None
        )
        store.log(failed)
        store.log(explain)
    return {"db": db, "reference": train_val.train, "baseline": baseline}


@pytest.fixture
def settings(tmp_path: Path) -> MonitorConfig:
    """A fresh alert store and reports folder per test: the alerts one test raises must not
    decide what another sees (each test passes alone and in any order)."""
    return MonitorConfig(
        alert_store=f"sqlite:///{tmp_path}/alerts.db", reports_dir=str(tmp_path / "reports")
    )


def _run(
    world: dict[str, object], settings: MonitorConfig, hour: int, **kw: object
) -> MonitorResult:
    """The monitor as the CronJob runs it, 42 s after ``hour`` ended."""
    args = {
        "now": T0 + (hour + 1) * HOUR + 42,
        "settings": settings,
        "baseline_error": world["baseline"],
        **kw,
    }
    return run_monitor(CFG, world["db"], world["reference"], **args)  # type: ignore[arg-type]


def test_same_world_raises_nothing(world: dict[str, object], settings: MonitorConfig) -> None:
    result = _run(world, settings, 0)
    assert result.window == Window(T0, T0 + HOUR) and result.rows == 300
    assert result.drift is not None and not result.drift.dataset_drift
    assert result.concept is not None and not result.concept.drifted
    assert result.concept.n_labelled == 150
    assert result.reasons == () and result.alert is None
    assert result.health.requests == 301 and result.health.errors == 1  # explain not counted
    assert result.health.error_rate == pytest.approx(1 / 301) and result.healthy
    assert result.model_versions == {"3": 225, "4": 75}
    assert result.html_url is not None and "<html" in read_report(result.html_url)[:2000].lower()
    doc = json.loads(read_report(result.json_url))
    assert doc["alert"] is None and len(doc["data_drift"]["features"]) == 5


def test_shifted_world_alerts_exactly_once(
    world: dict[str, object], settings: MonitorConfig
) -> None:
    first = _run(world, settings, 1)
    assert set(first.reasons) == {"data_drift", "concept_drift"}
    assert first.alert is not None and first.alert_created and first.alert.status == "open"
    for _ in range(2):  # the CronJob runs again within the hour
        again = _run(world, settings, 1)
        assert again.alert is not None and not again.alert_created
        assert again.alert.alert_id == first.alert.alert_id
    store = AlertStore(settings.alert_store)
    (alert,) = store.alerts(status="open")
    ev = alert.evidence
    assert ev["window"] == {"start": T0 + HOUR, "end": T0 + 2 * HOUR}
    assert alert.model_versions == ("3", "4") and ev["model_versions"] == {"3": 225, "4": 75}
    assert set(ev["data_drift"]["drifted"]) == set(CFG.feature_names)
    assert all(f["p_value"] < 1e-6 for f in ev["data_drift"]["features"])
    assert ev["concept_drift"]["ratio"] > 1.2
    assert Path(ev["reports"]["html"]).is_file() and Path(ev["reports"]["json"]).is_file()


def test_next_flapping_hour_is_suppressed(
    world: dict[str, object], settings: MonitorConfig
) -> None:
    _run(world, settings, 1)
    result = _run(world, settings, 2)
    assert result.alert is not None and result.alert.status == "suppressed"
    store = AlertStore(settings.alert_store)
    assert [a.status for a in store.alerts()] == ["open", "suppressed"]
    assert len(store.claimable()) == 1


def test_small_window_is_not_judged(
    world: dict[str, object], settings: MonitorConfig, tmp_path: Path
) -> None:
    result = _run(world, settings, 5, out_dir=tmp_path)  # no traffic in that hour
    assert result.rows == 0 and result.drift is None and result.concept is None
    assert any("min_rows" in n for n in result.notes) and result.html_url is None


def test_backfill_window_and_argument_checks(
    world: dict[str, object], settings: MonitorConfig
) -> None:
    result = _run(world, settings, 9, since=T0, until=T0 + 150)
    assert result.window == Window(T0, T0 + 150) and result.rows == 150
    with pytest.raises(DataError, match="both"):
        _run(world, settings, 9, since=T0)


def test_unhealthy_window(world: dict[str, object], tmp_path: Path) -> None:
    strict = MonitorConfig(
        max_error_rate=0.001, html_report=False, alert_store=f"sqlite:///{tmp_path}/a.db"
    )
    result = _run(world, strict, 0, out_dir=tmp_path)
    assert not result.healthy and result.html_url is None and result.alert is None


def test_missing_payload_log(world: dict[str, object], tmp_path: Path) -> None:
    with pytest.raises(PayloadWindowError, match="no payload log"):
        run_monitor(CFG, tmp_path / "none.db", world["reference"], now=T0)  # type: ignore[arg-type]


def test_positional_instances_and_missing_features() -> None:
    meta = {
        "request_id": "r",
        "instance": 0,
        "endpoint": "predict",
        "status": 200,
        "latency_ms": 1.0,
    }
    frame = pd.DataFrame(
        [
            {
                **meta,
                "model_version": "3",
                "feature.area_m2": 50.0,
                "prediction": [0.2, 0.8],
                "label": 1,
            }
        ]
    )
    data = frame_window(frame, ["area_m2"], ["predict"])
    assert data.features["area_m2"].tolist() == [50.0] and data.predictions.tolist() == [0.8]
    with pytest.raises(PayloadWindowError, match="lack features"):
        frame_window(frame, ["area_m2", "district"], ["predict"])


def test_reference_frame_is_the_champions_registered_reference(tmp_path: Path) -> None:
    """The monitor's reference is the sample of the training split logged with the serving
    champion, read from the registry (no local data file needed)."""
    cfg = CFG.with_overrides(
        data={"data_dir": str(tmp_path / "data"), "rows": 400},
        train={"epochs": 50},
        artifacts_dir=str(tmp_path / "artifacts"),  # type: ignore[arg-type]
        registry={"tracking_uri": f"sqlite:///{tmp_path}/m.db", "artifact_root": str(tmp_path)},
    )
    with pytest.raises(ModelVersionNotFoundError, match="no version with alias 'champion'"):
        reference_frame(cfg)
    data = generate_data(cfg)
    sample = reference_sample(cfg, split_frame(cfg, pd.read_parquet(data)).train)
    reg = Registry(cfg.registry)
    model = train_job(cfg, data).files["model"]
    reg.set_alias(cfg.model_name, CHAMPION, reg.log_and_register(model, {}, {}, [], {}).version)
    with pytest.raises(ReferenceNotFoundError, match="version 1 has no drift reference"):
        reference_frame(cfg)
    version = reg.log_and_register(model, {}, {}, [], {}, reference=sample).version
    reg.set_alias(cfg.model_name, CHAMPION, version)
    data.unlink()  # as in a monitor pod: no data file
    pd.testing.assert_frame_equal(reference_frame(cfg), sample)


# -- our statistics against Evidently's ------------------------------------------------------------
@pytest.mark.parametrize(("shift", "rows"), [(0.0, 400), (0.3, 250), (1.0, 600)])
def test_ks_and_chisquare_equal_evidentlys(
    world: dict[str, object], shift: float, rows: int
) -> None:
    reference: pd.DataFrame = world["reference"]  # type: ignore[assignment]
    current = generate(CFG.data.model_copy(update={"shift": shift, "seed": 99, "rows": rows}))
    scores = column_scores(
        run_preset(reference, current, CFG.numeric_features, CFG.categorical_features)
    )
    settings = MonitorConfig(ks_fast_tail=False, cat_method="chisquare")  # scipy's p everywhere
    report = detect_drift(
        reference,
        current,
        settings,
        numeric=CFG.numeric_features,
        categorical=CFG.categorical_features,
    )
    ours = {f.name: f for f in report.features}
    for name in CFG.feature_names:
        assert ours[name].p_value == pytest.approx(scores[name], rel=1e-12, abs=1e-300), name
    for name in CFG.numeric_features:  # and the statistic behind each p-value is scipy's
        assert ours[name].statistic == stats.ks_2samp(reference[name], current[name]).statistic


def test_category_new_to_the_reference(world: dict[str, object]) -> None:
    reference: pd.DataFrame = world["reference"]  # type: ignore[assignment]
    current = generate(CFG.data.model_copy(update={"seed": 4, "rows": 300}))
    current.loc[:20, "district"] = "nha_be"
    scores = column_scores(run_preset(reference, current, CFG.numeric_features, ("district",)))
    settings = MonitorConfig(ks_fast_tail=False, cat_method="chisquare")
    numeric = CFG.numeric_features
    ours = detect_drift(
        reference, current, settings, numeric=numeric, categorical=("district",)
    ).features[-1]
    assert ours.p_value == scores["district"] == 0.0 and ours.drifted
    chi2 = detect_drift(reference, current, MonitorConfig(), categorical=("district",)).features[0]
    assert chi2.drifted and chi2.p_value is not None and chi2.p_value < 1e-6
