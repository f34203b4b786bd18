"""The closed loop, end to end on one machine (``make demo``):

train v1 → serve → traffic → the world shifts → monitor detects drift → alert → retrain v2 on
the new data → canary → promote → the lineage answer to the on-call questions.

Everything is real: the compiled KFP pipeline under kfp.local, Feast, MLflow, the KServe
servers and the router on loopback, the monitor with Evidently's report, the rollout controller.
"""

from __future__ import annotations

import shutil
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import numpy as np
import pandas as pd
import yaml

from mlplatform.config import PlatformConfig, load_config
from mlplatform.core.training import generate, split_frame
from mlplatform.errors import PlatformError

if TYPE_CHECKING:
    from mlplatform.monitoring.monitor import MonitorResult

Say = Callable[[str], None]


class LoopError(PlatformError):
    """A step of the closed loop did not do what the story needs (the message says which)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def loop_config(work: Path, base: Path, rows: int = 3000) -> tuple[PlatformConfig, Path]:
    """house-price with every path under ``work`` and free loopback ports; written as YAML."""
    (work / "feature_repo").mkdir(parents=True, exist_ok=True)
    shutil.copy(base / "feature_repo/feature_store.yaml", work / "feature_repo")
    ports = ("router_port", "stable_port", "canary_port", "transformer_port", "explainer_port")
    cfg = load_config(base / "configs/house-price.yaml").with_overrides(
        artifacts_dir=str(work / "artifacts"),  # type: ignore[arg-type]
        data={"rows": rows, "data_dir": str(work / "data")},
        registry={"tracking_uri": f"sqlite:///{work}/mlflow.db", "artifact_root": str(work / "ml")},
        feature_store={"repo_dir": str(work / "feature_repo")},
        serve={"payload_db": str(work / "payloads.db"), **{p: free_port() for p in ports}},
        monitor={
            "alert_db": str(work / "alerts.db"),
            "reports_dir": str(work / "monitoring"),
            "min_rows": 100,
            "min_labels": 30,
        },
        rollout={
            "min_requests": 60,
            "max_step_seconds": 120,
            "max_p95_latency_ratio": 5.0,
            "max_prediction_shift": 0.5,
        },
    )
    path = work / "house-price.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json", by_alias=True)))
    return cfg, path


@dataclass
class Traffic:
    """Clients sending single-row predictions through the router, then their true prices."""

    url: str
    rows: pd.DataFrame
    features: tuple[str, ...]
    target: str
    sent: int = 0
    failures: list[str] = field(default_factory=list)

    def send(self, n: int, feedback: bool = True) -> None:
        with httpx.Client(timeout=60) as c:
            for _, row in self.rows.sample(n=n, replace=True, random_state=self.sent).iterrows():
                self._one(c, row, feedback)

    def _one(self, c: httpx.Client, row: pd.Series, feedback: bool) -> None:
        body = {"instances": [[_plain(row[f]) for f in self.features]]}
        r = c.post(f"{self.url}/v1/models/house-price:predict", json=body)
        self.sent += 1
        if r.status_code != 200:
            self.failures.append(f"{r.status_code} {r.text[:200]}")
            return
        if feedback:
            label = {"request_id": r.headers["x-request-id"], "label": float(row[self.target])}
            c.post(f"{self.url}/v1/feedback", json=label).raise_for_status()

    def background(self) -> tuple[threading.Event, threading.Thread]:
        stop = threading.Event()

        def run() -> None:
            while not stop.is_set():
                self.send(10, feedback=False)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return stop, thread


def _plain(v: object) -> object:
    return v.item() if isinstance(v, np.generic) else v


def shifted_world(cfg: PlatformConfig, shift: float) -> pd.DataFrame:
    """The world after the change: later events, new ids, moved inputs and prices."""
    later = cfg.with_overrides(
        data={"shift": shift, "seed": cfg.data.seed + 100, "start_date": "2026-07-01"}
    )
    df = generate(later.data)
    df[cfg.entity] += 1_000_000
    return df


def now() -> float:
    return datetime.now(UTC).timestamp()


@dataclass
class LoopResult:
    versions: dict[str, str]
    alert_id: int | None
    rollout: str
    lineage: dict[str, object]
    reports: list[Path]
    failed_requests: int


def run_loop(work: Path, base: Path, say: Say, rows: int = 3000) -> LoopResult:
    """The whole story; ``say`` prints progress. Returns what a test or the README checks."""
    from mlplatform.jobs import generate_data
    from mlplatform.pipeline_runner import run_local

    cfg, path = loop_config(work, base, rows)
    pipeline = base / "pipelines/training_pipeline.yaml"
    say("1/7 data v1 (the baseline world) and the training pipeline (kfp.local)")
    generate_data(cfg)
    log = cfg.artifacts_dir / "logs" / "pipelines.log"
    say(f"     (task logs: {log})")
    v1 = run_local(cfg, pipeline, base, log=log).version
    say(f"     registered house-price v{v1}: champion")
    reports: list[Path] = []
    return _serve_and_watch(cfg, path, base, pipeline, v1 or "?", reports, say)


def _serve_and_watch(
    cfg: PlatformConfig,
    path: Path,
    base: Path,
    pipeline: Path,
    v1: str,
    reports: list[Path],
    say: Say,
) -> LoopResult:
    from mlplatform.serving.stack import LocalStack

    _materialize(cfg)
    say("2/7 serving: router, predictor, transformer, explainer on loopback")
    stack = LocalStack(
        cfg, path, canary=False, log_dir=cfg.artifacts_dir / "logs", versions=(v1, None)
    )
    with stack:
        router = stack.url(cfg.serve.router_port)
        old = split_frame(cfg, pd.read_parquet(cfg.data.data_dir / "house-price.parquet")).test
        traffic = Traffic(router, old, cfg.feature_names, cfg.target)
        t0 = now()
        traffic.send(150)
        t1 = now()
        say(f"3/7 {traffic.sent} requests from the baseline world; monitoring them ...")
        quiet = _monitor(cfg, t0, t1, say, reports)
        if quiet.alert is not None:
            raise LoopError(f"the monitor raised alert {quiet.alert.alert_id} on baseline traffic")
        say("4/7 the world changes: bigger, newer homes farther out, higher prices per m²")
        new_world = shifted_world(cfg, shift=1.0)
        traffic.rows = split_frame(cfg, new_world).test
        traffic.send(200)
        alert = _monitor(cfg, t1, now(), say, reports).alert
        if alert is None:
            raise LoopError("the monitor did not detect the shifted inputs")
        v2 = _retrain(cfg, new_world, pipeline, base, say)
        outcome = _canary(cfg, path, stack, router, traffic, v2, say)
    return _finish(cfg, {"v1": v1, "v2": v2}, alert.alert_id, outcome, reports, traffic, say)


def _materialize(cfg: PlatformConfig) -> None:
    from mlplatform.features import apply, feature_store, materialize

    store = feature_store(cfg.feature_store.repo_dir, cfg.feature_store.store_yaml)
    apply(store, [cfg])
    materialize(store, end=datetime.now(UTC))


def _monitor(
    cfg: PlatformConfig, since: float, until: float, say: Say, reports: list[Path]
) -> MonitorResult:
    from mlplatform.monitoring.monitor import reference_frame, run_monitor

    r = run_monitor(cfg, cfg.serve.payload_db, reference_frame(cfg), since, until + 1e-3)
    drifted = ", ".join(r.drift.drifted) if r.drift else "-"
    say(
        f"     monitor: {r.rows} rows, drifted features: {drifted or 'none'}; "
        f"{'ALERT ' + str(r.alert.alert_id) if r.alert else 'no alert'}"
    )
    reports += [p for p in (r.html_path, r.json_path) if p is not None]
    return r


def _retrain(
    cfg: PlatformConfig, new_world: pd.DataFrame, pipeline: Path, base: Path, say: Say
) -> str:
    from mlplatform.retrain import local_starter, retrain_pending

    say("5/7 the alert triggers a retrain on the new data (a new data version)")
    new_world.to_parquet(cfg.data.data_dir / "house-price.parquet", index=False)
    _materialize(cfg)
    log = cfg.artifacts_dir / "logs" / "pipelines.log"
    outcomes = retrain_pending(cfg, local_starter(pipeline, base, log))
    started = [o for o in outcomes if o.version]
    if not started:
        raise LoopError(f"the retrain did not register a model: {outcomes}")
    say(
        f"     alert {started[0].alert_id} → run {started[0].run_id} → "
        f"house-price v{started[0].version} (challenger)"
    )
    return str(started[0].version)


def _canary(
    cfg: PlatformConfig,
    path: Path,
    stack: object,
    router: str,
    traffic: Traffic,
    v2: str,
    say: Say,
) -> str:
    from mlplatform.registry.mlflow_registry import Registry
    from mlplatform.serving.rollout import RolloutController
    from mlplatform.serving.stack import Service
    from mlplatform.serving.traffic import LocalRouterBackend

    say(f"6/7 canary: v{v2} beside the champion, stepping {list(cfg.rollout.steps)} %")
    port = cfg.serve.canary_port
    canary = Service(
        "canary",
        port,
        (
            "mlplatform.serving.predictor",
            "--platform_config",
            str(path),
            "--model_name",
            cfg.model_name,
            "--alias",
            "challenger",
            "--http_port",
            str(port),
        ),
    )
    stack.add(canary)
    LocalRouterBackend(router).attach(stack.url(port), v2)
    stop, thread = traffic.background()
    try:
        result = RolloutController(
            LocalRouterBackend(router),
            cfg.rollout,
            Registry(cfg.registry),
            cfg.model_name,
            poll_seconds=0.2,
            progress=lambda line: say(f"     {line}"),
        ).run()
    finally:
        stop.set()
        thread.join(60)
    say(f"     {result.outcome}: {result.reason}")
    return str(result.outcome)


def _finish(
    cfg: PlatformConfig,
    versions: dict[str, str],
    alert_id: int,
    outcome: str,
    reports: list[Path],
    traffic: Traffic,
    say: Say,
) -> LoopResult:
    from mlplatform.registry.mlflow_registry import Registry, lineage_document

    doc = lineage_document(Registry(cfg.registry), cfg.model_name)
    say("7/7 what is serving now (mlplatform lineage house-price):")
    reports += sorted(cfg.artifacts_dir.glob("pipeline-runs/*/explain/report"))
    reports += sorted(cfg.artifacts_dir.glob("pipeline-runs/*/train-gd/model.png"))
    return LoopResult(versions, alert_id, outcome, doc, reports, len(traffic.failures))
