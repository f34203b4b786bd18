"""`mlplatform monitor` and `mlplatform retrain` as a user runs them, on a real payload log,
alert store and MLflow registry (SQLite files), with a champion registered as the pipeline
does: the monitor judges the traffic just sent and prints readable lines with ISO times; the
retrain trains on the new data, refuses the champion's own, and says started → finished."""

from __future__ import annotations

import hashlib
import re
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pandas as pd
import pytest
import yaml
from tests.support.mlflow_server import register_version
from typer.testing import CliRunner

from mlplatform.cli import app
from mlplatform.cli.base import console
from mlplatform.config import PlatformConfig, load_config
from mlplatform.core.alerts import Window
from mlplatform.core.training import generate
from mlplatform.monitoring.alert_store import AlertStore
from mlplatform.registry.mlflow_registry import CHALLENGER, Registry
from mlplatform.serving.payloads import PayloadRecord, PayloadStore
from mlplatform.stages import data_step

ROOT = Path(__file__).resolve().parents[2]
SHIFTED = 150  # requests from a shifted world, logged just before the tests run
LABELLED = 40  # of them with ground truth
ISO = r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)"


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def seconds(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A champion (v1) trained on data/house-price.parquet, lineage naming that file's md5,
    and a payload log holding the shifted traffic of the last few seconds."""
    root = tmp_path_factory.mktemp("cli")
    (root / "feature_repo").mkdir()
    shutil.copy(ROOT / "feature_repo/feature_store.yaml", root / "feature_repo")
    cfg = load_config(ROOT / "configs/house-price.yaml", env={}).with_overrides(
        artifacts_dir=str(root / "artifacts"),  # type: ignore[arg-type]
        data={"rows": 400, "seed": 1, "data_dir": str(root / "data")},
        train={"epochs": 60},
        explain={"background_rows": 300},
        registry={"tracking_uri": f"sqlite:///{root}/mlflow.db", "artifact_root": str(root)},
        serve={"payload_store": f"sqlite:///{root}/payloads.db"},
        feature_store={"repo_dir": str(root / "feature_repo")},
    )
    (root / "v1").mkdir()
    version, model, _ = register_version(cfg, root / "v1", {"data_md5": "set below"})
    md5 = md5_of(cfg.data_path)
    Registry(cfg.registry).client.set_model_version_tag(
        cfg.model_name, version, "lineage.data_md5", md5
    )
    times = _log_shifted_traffic(cfg)
    return {"cfg": cfg, "v1": version, "md5": md5, "times": times, "model": model}


def _log_shifted_traffic(cfg: PlatformConfig) -> list[float]:
    """SHIFTED answered requests (predictions half the truth: concept drift), LABELLED with
    feedback, and one 503, in the seconds before now; the times logged."""
    df = generate(cfg.data.model_copy(update={"shift": 1.0, "seed": 5, "rows": SHIFTED}))
    rows = df[list(cfg.feature_names)].to_dict("records")
    now = time.time()
    times = [now - 5 + i * 4 / SHIFTED for i in range(SHIFTED + 1)]
    with PayloadStore(cfg.serve.payload_store) as store:
        for i, row in enumerate(rows):
            body = orjson.dumps({"instances": [row]}).decode()
            half = float(df[cfg.target].iloc[i]) / 2
            reply = orjson.dumps({"predictions": [half]}).decode()
            record = (f"r{i}", times[i], cfg.model_name, "stable", "1", "predict", 200, 3.0, 1)
            store.log(PayloadRecord(*record, body, reply))
        failed = (f"r{SHIFTED}", times[-1], cfg.model_name, "stable", "1", "predict", 503, 9.0)
        store.log(PayloadRecord(*failed, 1, None, None, "boom"))
        labels = [(f"r{i}", float(df[cfg.target].iloc[i])) for i in range(LABELLED)]
        store.add_feedback_many(labels)
    return times


def config_file(world: dict[str, object], tmp_path: Path) -> Path:
    """The world's config with this test's own alert store, reports folder and copy of the
    registry (alert ids start at 1 in each store, and name the runs they trigger)."""
    cfg: PlatformConfig = world["cfg"]  # type: ignore[assignment]
    shutil.copy(cfg.registry.tracking_uri.removeprefix("sqlite:///"), tmp_path / "mlflow.db")
    cfg = cfg.with_overrides(
        artifacts_dir=str(tmp_path / "artifacts"),  # type: ignore[arg-type]
        registry={"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db"},
        monitor={
            "alert_store": f"sqlite:///{tmp_path}/alerts.db",
            "reports_dir": str(tmp_path),
            "html_report": False,  # Evidently's page is tested in test_monitor.py
        },
    )
    path = tmp_path / "house-price.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json", by_alias=True)))
    return path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


def window_of(output: str) -> tuple[float, float, int]:
    """(start, end, rows) from the monitor's first line."""
    m = re.search(rf"window {ISO} → {ISO}.*: (\d+) rows", output)
    assert m, output
    return seconds(m[1]), seconds(m[2]), int(m[3])


def test_monitor_judges_the_traffic_just_sent(world: dict[str, object], tmp_path: Path) -> None:
    config = config_file(world, tmp_path)
    before = time.time()
    code, out = run("monitor", "--config", str(config))
    assert code == 0, out
    start, end, rows = window_of(out)
    times: list[float] = world["times"]  # type: ignore[assignment]
    assert end - start == 3600 and times[-1] < end <= time.time() + 1 and end > before
    assert rows == SHIFTED  # the 503 has no rows to judge
    assert re.search(r"data drift +DRIFT: [3-5] of 5 features drifted", out), out
    assert re.search(rf"concept drift +DRIFT: rmse .* on {LABELLED} labelled rows", out), out
    assert re.search(rf"health +(NOT )?ok: {SHIFTED + 1} requests, 1 error ", out), out
    assert "SystemHealth(" not in out and "ConceptDrift(" not in out, out
    assert re.search(r"alert +ALERT \d+ \(open\) written", out), out
    assert f"mlplatform retrain --config {config}" in out

    # The printed times, given back, name the same window: the same alert, not a second one.
    code, again = run("monitor", "-c", str(config), "--since", iso(start), "--until", iso(end))
    assert code == 0 and window_of(again) == (start, end, rows), again
    assert "already recorded for this window" in again, again
    assert len(AlertStore(f"sqlite:///{tmp_path}/alerts.db").alerts()) == 1


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_aligned_window_is_the_cronjobs_and_says_what_is_missing(
    world: dict[str, object], tmp_path: Path
) -> None:
    config = config_file(world, tmp_path)
    code, out = run("monitor", "--config", str(config), "--aligned")
    assert code == 0, out
    start, end, rows = window_of(out)
    assert start % 3600 == 0 and end - start == 3600 and end <= time.time()
    times: list[float] = world["times"]  # type: ignore[assignment]
    expected = sum(start <= t < end for t in times[:SHIFTED])  # 0 unless an hour just turned
    assert rows == expected
    if expected < 100:
        note = f"the window holds {expected} rows, it needs at least 100 (monitor.min_rows)"
        assert note in out and "--since/--until" in out, out


def test_few_rows_say_how_many_and_what_to_do(world: dict[str, object], tmp_path: Path) -> None:
    config = config_file(world, tmp_path)
    times: list[float] = world["times"]  # type: ignore[assignment]
    last = times[SHIFTED - 1]  # two seconds of unlabelled traffic: no verdict, no alert
    since, until = iso(last - 1), iso(last + 1)
    code, out = run("monitor", "--config", str(config), "--since", since, "--until", until)
    assert code == 0, out
    start, end, rows = window_of(out)
    assert rows == sum(start <= t < end for t in times[:SHIFTED]) < 100
    assert f"the window holds {rows} rows, it needs at least 100 (monitor.min_rows)" in out
    assert "0 rows have ground truth, it needs at least 30 (monitor.min_labels)" in out
    assert "send more requests" in out and re.search(r"\nalert +none\n", out), out


# -- retrain ---------------------------------------------------------------------------------


class FakePipeline:
    """Stands in for kfp.local: notes the data it was given (the run's config), shows a line
    (so the order of messages shows) and prints library noise, registers a version tagged
    with the trigger and gives it the challenger alias, as the register task does."""

    def __init__(self, model: Path) -> None:
        self.model, self.seen = model, list[PlatformConfig]()

    def starter(self, pipeline: Path | None, base: Path, log: Path | None = None):  # type: ignore[no-untyped-def]
        def start(cfg: PlatformConfig, trigger: str) -> tuple[str, str]:
            self.seen.append(cfg)
            console.print("PIPELINE-RUNNING")  # what reaches the terminal
            print("LIBRARY-NOISE")  # what kfp.local and the libraries print
            reg = Registry(cfg.registry)
            info = reg.log_and_register(self.model, {}, {}, [], {"trigger": trigger})
            reg.set_alias(cfg.model_name, CHALLENGER, info.version)
            return f"run-{trigger}", info.version

        return start


@pytest.fixture
def pipeline(world: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> FakePipeline:
    fake = FakePipeline(world["model"])  # type: ignore[arg-type]
    monkeypatch.setattr("mlplatform.orchestration.retrain.local_starter", fake.starter)
    return fake


def open_alert(tmp_path: Path) -> int:
    store = AlertStore(f"sqlite:///{tmp_path}/alerts.db")
    window = Window(1_800_000_000.0, 1_800_003_600.0)
    return store.record(
        "house-price", window, ["data_drift"], {}, ["1"], 1_800_003_700, 0
    ).alert.alert_id


def test_retrain_refuses_the_champions_own_data(
    world: dict[str, object], tmp_path: Path, pipeline: FakePipeline
) -> None:
    config = config_file(world, tmp_path)
    alert_id = open_alert(tmp_path)
    code, out = run("retrain", "--config", str(config))
    assert code == 2 and pipeline.seen == [], out
    assert f"data version {world['md5']} is the one champion v{world['v1']} was trained on" in out
    assert "--data FILE" in out and "--same-data" in out, out
    stored = AlertStore(f"sqlite:///{tmp_path}/alerts.db").get(alert_id)
    assert stored.status == "open" and stored.claims == 0  # still waiting for new data

    code, out = run("retrain", "--config", str(config), "--same-data")  # on purpose
    assert code == 0 and len(pipeline.seen) == 1, out
    assert md5_of(pipeline.seen[0].data_path) == world["md5"]


def test_retrain_on_a_new_file_says_started_then_finished(
    world: dict[str, object], tmp_path: Path, pipeline: FakePipeline
) -> None:
    cfg: PlatformConfig = world["cfg"]  # type: ignore[assignment]
    config = config_file(world, tmp_path)
    alert_id = open_alert(tmp_path)
    new = tmp_path / "new-world.parquet"
    generate(cfg.data.model_copy(update={"shift": 1.0, "seed": 9})).to_parquet(new)
    code, out = run("retrain", "--config", str(config), "--data", str(new))
    assert code == 0, out
    (run_cfg,) = pipeline.seen
    assert md5_of(run_cfg.data_path) == md5_of(new) != world["md5"]
    trigger = f"alert-house-price-{alert_id}"
    started = out.index(f"{trigger}: starting a training run on data {run_cfg.data_path}")
    m = re.search(
        rf"alert {alert_id}: run run-{trigger} finished: registered house-price v(\d+)", out
    )
    assert m and started < out.index("PIPELINE-RUNNING") < m.start(), out
    assert "LIBRARY-NOISE" not in out  # quiet by default: it went to the log file
    assert "LIBRARY-NOISE" in (tmp_path / "artifacts/logs/pipelines.log").read_text()
    info = Registry(run_cfg.registry).version(cfg.model_name, m[1])
    assert f"(aliases: {', '.join(sorted(info.aliases))})" in out and CHALLENGER in info.aliases
    assert info.tags["lineage.trigger"] == trigger
    stored = AlertStore(f"sqlite:///{tmp_path}/alerts.db").get(alert_id)
    assert stored.status == "resolved" and stored.resolved_version == m[1]

    # What the pipeline's data task reads from that config: exactly the new file's rows.
    step = data_step(run_cfg, tmp_path / "run" / "dataset.parquet")
    assert step["data_md5"] == md5_of(new)
    frame = pd.read_parquet(tmp_path / "run" / "dataset.parquet")
    original = pd.read_parquet(new)
    assert sorted(frame["house_id"]) == sorted(original["house_id"])
    assert frame[cfg.target].sum() == pytest.approx(original[cfg.target].sum())


def test_retrain_data_version_and_bad_arguments(
    world: dict[str, object], tmp_path: Path, pipeline: FakePipeline
) -> None:
    config = config_file(world, tmp_path)
    open_alert(tmp_path)
    same = str(world["md5"])
    code, out = run("retrain", "--config", str(config), "--data-version", same)
    assert code == 2 and "was trained on" in out and pipeline.seen == [], out
    new = "0123456789abcdef0123456789abcdef"
    code, out = run("retrain", "--config", str(config), "--data-version", new)
    assert code == 0 and [c.data.version for c in pipeline.seen] == [new], out
    assert f"starting a training run on data version {new}" in out

    bad = [
        (["--data", "x.parquet", "--data-version", new], "not both"),
        (["--data", str(tmp_path / "missing.parquet")], "no data file at"),
        (["--data", str(config)], "not a readable Parquet file"),
        (["--data-version", "latest"], "data.version"),
        (["--backend", "kfp", "--kfp-host", "http://kfp", "--data", "x.parquet"], "local backend"),
    ]
    for args, message in bad:
        code, out = run("retrain", "--config", str(config), *args)
        assert code == 2 and message in out and "Traceback" not in out, (args, out)
    assert len(pipeline.seen) == 1


def test_no_alert_no_run(world: dict[str, object], tmp_path: Path, pipeline: FakePipeline) -> None:
    code, out = run("retrain", "--config", str(config_file(world, tmp_path)))
    assert code == 0 and "house-price: no drift alert waiting for a retrain" in out
    assert pipeline.seen == []  # nothing started, nothing refused
