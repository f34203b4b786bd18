"""The closed loop, end to end on one machine (``make demo``):

train v1 → serve → traffic → the world shifts → monitor detects drift → alert → retrain v2 on
the new data → canary → promote → the lineage answer to the on-call questions.

Everything is real: the compiled KFP pipeline under kfp.local, Feast, MLflow, the KServe
servers and the router on loopback, the monitor with Evidently's report, the rollout controller.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from mlplatform.config import PlatformConfig
from mlplatform.core.training import split_frame
from mlplatform.demo.clients import Clients
from mlplatform.demo.rig import loop_config, now, shifted_world
from mlplatform.errors import LoopError
from mlplatform.features import refresh_online

if TYPE_CHECKING:
    from mlplatform.monitoring.monitor import MonitorResult
    from mlplatform.serving.stack import LocalStack

Say = Callable[[str], None]


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
    from mlplatform.orchestration.runner import run_local
    from mlplatform.stages import generate_data

    cfg, path = loop_config(work, base, rows)
    pipeline = base / "pipelines/training_pipeline.yaml"
    say("1/7 data v1 (the baseline world) and the training pipeline (kfp.local)")
    generate_data(cfg)
    v1 = run_local(cfg, pipeline, base).version
    say(f"     registered {cfg.model_name} v{v1}: champion")
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

    refresh_online(cfg)
    say("2/7 serving: router, predictor, transformer, explainer on loopback")
    stack = LocalStack(
        cfg, path, canary=False, log_dir=cfg.artifacts_dir / "logs", versions=(v1, None)
    )
    with stack:
        router = stack.url(cfg.serve.router_port)
        # new homes from the unchanged world (drawn afresh: resampling the 450-row test split
        # repeats rows, which KS reads as evidence, and flags a feature in most windows)
        same = shifted_world(cfg, shift=0.0)
        token = stack.tokens.feedback
        traffic = Clients(router, cfg.model_name, same, cfg.feature_names, cfg.target, token)
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
        outcome = _canary(cfg, path, stack, traffic, v2, say)
    return _finish(cfg, {"v1": v1, "v2": v2}, alert.alert_id, outcome, reports, traffic, say)


def _monitor(
    cfg: PlatformConfig, since: float, until: float, say: Say, reports: list[Path]
) -> MonitorResult:
    from mlplatform.monitoring.monitor import reference_frame, run_monitor

    r = run_monitor(cfg, cfg.serve.payload_store, reference_frame(cfg), since, until + 1e-3)
    verdict = "not judged"
    if r.drift is not None:  # a feature at p < threshold by chance is not dataset drift
        d = r.drift
        verdict = (
            f"{len(d.drifted)} of {len(d.features)} features drifted "
            f"({', '.join(d.drifted) or 'none'}; dataset drift needs {d.drift_share:.0%}): "
            + ("dataset drift" if d.dataset_drift else "no dataset drift")
        )
    alert = f"ALERT {r.alert.alert_id}" if r.alert else "no alert"
    say(f"     monitor: {r.rows} rows, {verdict}; {alert}")
    reports += [Path(u) for u in (r.html_url, r.json_url) if u is not None]  # local folder
    return r


def _retrain(
    cfg: PlatformConfig, new_world: pd.DataFrame, pipeline: Path, base: Path, say: Say
) -> str:
    from mlplatform.orchestration.retrain import local_starter, retrain_pending

    say("5/7 the alert triggers a retrain on the new data (a new data version)")
    new_world.to_parquet(cfg.data_path, index=False)
    refresh_online(cfg)
    outcomes = retrain_pending(cfg, local_starter(pipeline, base))
    started = [o for o in outcomes if o.version]
    if not started:
        raise LoopError(f"the retrain did not register a model: {outcomes}")
    say(
        f"     alert {started[0].alert_id} → run {started[0].run_id} → "
        f"{cfg.model_name} v{started[0].version} (challenger)"
    )
    return str(started[0].version)


def _canary(
    cfg: PlatformConfig,
    path: Path,
    stack: LocalStack,
    traffic: Clients,
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
            "mlplatform.serving",
            "predictor",
            "--config",
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
    admin = LocalRouterBackend(stack.admin_url(), token=stack.tokens.admin)
    admin.attach(stack.url(port), v2)
    stop, thread = traffic.background()
    try:
        result = RolloutController(
            admin,
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
    traffic: Clients,
    say: Say,
) -> LoopResult:
    from mlplatform.registry.mlflow_registry import Registry, lineage_document

    doc = lineage_document(Registry(cfg.registry), cfg.model_name)
    say(f"7/7 what is serving now (mlplatform lineage {cfg.model_name}):")
    reports += sorted(cfg.artifacts_dir.glob("pipeline-runs/*/explain/report"))
    reports += sorted(cfg.artifacts_dir.glob("pipeline-runs/*/train-gd/model.png"))
    return LoopResult(versions, alert_id, outcome, doc, reports, len(traffic.failures))
