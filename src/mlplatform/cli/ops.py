"""Commands of the running platform: serve, rollout, monitor, retrain, features."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from mlplatform.cli.base import ConfigOpt, app, console, friendly
from mlplatform.config import load_config
from mlplatform.errors import UsageError


@app.command()
@friendly
def serve(
    config: ConfigOpt = Path("configs/house-price.yaml"),
    canary: Annotated[
        bool | None, typer.Option("--canary/--no-canary", help="Default: if a challenger exists.")
    ] = None,
) -> None:
    """Start router, stable + canary predictors, transformer and explainer on loopback."""
    import signal
    import threading

    from mlplatform.serving.stack import LocalStack, registry_versions

    cfg = load_config(config)
    stable, challenger = registry_versions(cfg)
    with_canary = canary if canary is not None else challenger is not None
    stack = LocalStack(cfg, config, with_canary, versions=(stable, challenger))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with stack:
        table = Table(title=f"{cfg.model_name}: local serving stack (Ctrl-C stops everything)")
        table.add_column("service")
        table.add_column("listens on")
        for svc in stack.services():
            table.add_row(svc.name, stack.url(svc.port))
        console.print(table)
        name = cfg.model_name
        console.print(f"predict: POST {stack.url(cfg.serve.router_port)}/v1/models/{name}:predict")
        console.print(
            f"admin API: {stack.admin_url()}/admin/*; feedback and admin tokens: "
            f"{cfg.artifacts_dir / 'tokens.json'} (or MLPLATFORM_FEEDBACK_TOKEN/_ADMIN_TOKEN)"
        )
        stop.wait()
        console.print("stopping ...")
    console.print("stopped; no server left running")


features_app = typer.Typer(help="The Feast feature store.", no_args_is_help=True)
app.add_typer(features_app, name="features")


@features_app.command("materialize")
@friendly
def features_materialize(config: ConfigOpt = Path("configs/house-price.yaml")) -> None:
    """Register the model's feature views (feast apply) and fill the online store."""
    from mlplatform.stages import materialize_features

    cfg = load_config(config)
    source = materialize_features(cfg)
    console.print(f"{cfg.model_name}: online store filled from {source}")


@app.command()
@friendly
def rollout(
    config: ConfigOpt = Path("configs/house-price.yaml"),
    backend: Annotated[str, typer.Option(help="local (the router) or kserve.")] = "local",
    router_url: Annotated[
        str | None, typer.Option(help="Router admin API. Default: 127.0.0.1:router_admin_port.")
    ] = None,
    isvc: Annotated[str | None, typer.Option(help="InferenceService (kserve backend).")] = None,
    namespace: Annotated[str, typer.Option(help="Namespace (kserve backend).")] = "default",
    sink_url: Annotated[
        str, typer.Option(help="Payload sink (kserve backend).")
    ] = "http://payload-sink",
    watch: Annotated[
        bool, typer.Option(help="Keep running: roll out every new challenger (a controller).")
    ] = False,
    interval: Annotated[
        float, typer.Option(help="Seconds between registry checks (--watch).")
    ] = 30,
) -> None:
    """Step the canary (rollout.steps), then promote it in MLflow or roll it back, with reasons."""
    import os

    from mlplatform.serving import rollout as ro
    from mlplatform.serving.tokens import ADMIN_TOKEN_ENV, local_tokens

    cfg = load_config(config)
    if backend == "local":
        url = router_url or f"http://127.0.0.1:{cfg.serve.router_admin_port}"
        args = ["--config", str(config), "--router-url", url]
        admin = local_tokens(cfg.artifacts_dir).admin  # the token `mlplatform serve` gave it
        os.environ.setdefault(ADMIN_TOKEN_ENV, admin)
    elif backend == "kserve":
        args = [
            "--config",
            str(config),
            "--isvc",
            isvc or cfg.model_name,
            "--namespace",
            namespace,
            "--sink-url",
            sink_url,
        ]
    else:
        raise UsageError(f"unknown backend {backend!r}; use 'local' or 'kserve'")
    if watch:
        served = (
            ro.kserve_backend(namespace, isvc or cfg.model_name, sink_url).serves
            if backend == "kserve"
            else (lambda version: True)
        )
        stopping = ro.stop_on_sigterm()  # Kubernetes stops the pod: finish in order
        ro.watch(
            cfg,
            lambda: ro.main(args, exit_code=False, stopping=stopping),
            interval,
            stop=stopping.is_set,
            served=served,
            wait=stopping.wait,
        )
    else:
        ro.main(args)


@app.command()
@friendly
def monitor(
    config: ConfigOpt = Path("configs/house-price.yaml"),
    since: Annotated[float | None, typer.Option(help="Window start (Unix time).")] = None,
    until: Annotated[float | None, typer.Option(help="Window end (Unix time).")] = None,
) -> None:
    """Data drift (against the champion's reference in the registry), concept drift and
    health of a window of logged traffic; write the report and the alert."""
    from mlplatform.monitoring.monitor import reference_frame, run_monitor

    cfg = load_config(config)
    r = run_monitor(cfg, cfg.serve.payload_store, reference_frame(cfg), since, until)
    print_monitor(r)


def print_monitor(r: Any) -> None:
    console.print(f"{r.model}: window {r.window.start:.0f}–{r.window.end:.0f}, {r.rows} rows")
    if r.drift is not None:
        table = Table(title=f"data drift: {r.drift.share:.0%} of features drifted")
        for col in ("feature", "test", "statistic", "p-value", "drifted"):
            table.add_column(col)
        for f in r.drift.features:
            p = "-" if f.p_value is None else f"{f.p_value:.3g}"
            table.add_row(f.name, f.method, f"{f.statistic:.4f}", p, "yes" if f.drifted else "no")
        console.print(table)
    if r.concept is not None:
        console.print(f"concept drift: {r.concept}")
    console.print(f"health: {'ok' if r.healthy else 'NOT ok'} {r.health}")
    for note in r.notes:
        console.print(f"note: {note}")
    if r.alert is not None:
        verb = "written" if r.alert_created else "already recorded for this window"
        console.print(f"ALERT {r.alert.alert_id} ({r.alert.status}) {verb}: {'; '.join(r.reasons)}")
    else:
        console.print("no alert")
    console.print(f"report: {r.html_url or r.json_url}")


@app.command()
@friendly
def retrain(
    config: ConfigOpt = Path("configs/house-price.yaml"),
    backend: Annotated[str, typer.Option(help="local (kfp.local) or kfp (the KFP API).")] = "local",
    kfp_host: Annotated[
        str | None, typer.Option(envvar="KFP_HOST", help="KFP API URL (kfp backend).")
    ] = None,
    pipeline: Annotated[
        Path | None,
        typer.Option(help="Compiled pipeline, local backend (default: the installed one)."),
    ] = None,
) -> None:
    """Start one training run per open drift alert (exactly once, crash-safe)."""
    from mlplatform.orchestration.retrain import kfp_starter, local_starter, retrain_pending

    cfg = load_config(config)
    if backend == "local":
        start = local_starter(pipeline, Path.cwd())
    elif backend == "kfp" and kfp_host:
        start = kfp_starter(kfp_host)
    else:
        raise UsageError("use --backend local, or --backend kfp with --kfp-host (or KFP_HOST)")
    outcomes = retrain_pending(cfg, start)
    for o in outcomes:
        console.print(
            f"alert {o.alert_id}: {o.action} run={o.run_id} version={o.version}: {o.message}"
        )
    if not outcomes:
        console.print(f"{cfg.model_name}: no drift alert waiting for a retrain")
