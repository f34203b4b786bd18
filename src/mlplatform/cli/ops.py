"""Commands of the running platform: serve, features, rollout (monitor, retrain: ``monitoring``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from mlplatform.cli.base import ConfigOpt, app, console, friendly, library_output
from mlplatform.config import load_config
from mlplatform.errors import UsageError

if TYPE_CHECKING:
    from mlplatform.config import PlatformConfig
    from mlplatform.serving.stack import LocalStack
    from mlplatform.serving.traffic import LocalRouterBackend


@app.command()
@friendly
def serve(
    config: ConfigOpt = Path("configs/house-price.yaml"),
    canary: Annotated[
        bool | None,
        typer.Option(
            "--canary/--no-canary",
            help="Default: if a challenger exists (and for one registered later).",
        ),
    ] = None,
    registry_poll: Annotated[
        float, typer.Option(help="Seconds between registry checks for a new challenger (0: none).")
    ] = 5.0,
) -> None:
    """Start router, stable + canary predictors, transformer and explainer on loopback."""
    import signal
    import threading

    from mlplatform.serving.challenger_watch import watch_in_background
    from mlplatform.serving.stack import LocalStack, registry_versions

    cfg = load_config(config)
    stable, challenger = registry_versions(cfg, config)
    with_canary = canary if canary is not None else challenger is not None
    stack = LocalStack(cfg, config, with_canary, versions=(stable, challenger))
    stop, watching = threading.Event(), canary is not False and registry_poll > 0
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with stack:
        _print_stack(stack, config, watching)
        if watching:  # a challenger registered later gets a canary predictor
            watch_stop, _ = watch_in_background(stack, config, registry_poll, _plain)
        stop.wait()
        console.print("stopping ...")
        if watching:
            watch_stop.set()
    console.print("stopped; no server left running")


def _plain(line: str) -> None:
    console.print(line, markup=False, highlight=False)


def _print_stack(stack: LocalStack, config: Path, watching: bool) -> None:
    """Where each server listens, what is missing before entity ids work, what comes next."""
    from mlplatform.serving.features import online_store_hint

    cfg, name = stack.cfg, stack.cfg.model_name
    table = Table(title=f"{name}: local serving stack (Ctrl-C stops everything)")
    table.add_column("service")
    table.add_column("listens on")
    for svc in stack.services():
        table.add_row(svc.name, stack.url(svc.port))
    console.print(table)
    console.print(f"predict: POST {stack.url(cfg.serve.router_port)}/v1/models/{name}:predict")
    console.print(
        f"admin API: {stack.admin_url()}/admin/*; feedback and admin tokens: "
        f"{cfg.artifacts_dir / 'tokens.json'} (or MLPLATFORM_FEEDBACK_TOKEN/_ADMIN_TOKEN)"
    )
    if hint := online_store_hint(cfg, config):  # opens Feast: last, the stack already serves
        _plain(f"note: {hint}")
    if watching:
        _plain(
            "a challenger registered from now on gets a canary predictor here; then run "
            f"`mlplatform rollout --config {config}`"
        )


features_app = typer.Typer(help="The Feast feature store.", no_args_is_help=True)
app.add_typer(features_app, name="features")


@features_app.command("materialize")
@friendly
def features_materialize(config: ConfigOpt = Path("configs/house-price.yaml")) -> None:
    """Register the model's feature views (feast apply) and fill the online store."""
    from mlplatform.stages import materialize_features

    cfg = load_config(config)
    with library_output(cfg.artifacts_dir) as log:  # Feast's progress and colours: to the log
        source = materialize_features(cfg)
    if log is not None:
        console.print(f"feast's output → {log}", markup=False, highlight=False)
    console.print(
        f"{cfg.model_name}: online store filled from {source}; the transformer resolves "
        f"{cfg.entity} now (a running `mlplatform serve` too, without a restart)",
        markup=False,
        highlight=False,
    )


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
    canary_wait: Annotated[
        float,
        typer.Option(help="Local: seconds to wait for `mlplatform serve` to start the canary."),
    ] = 180,
) -> None:
    """Step the canary (rollout.steps), then promote it in MLflow or roll it back, with reasons."""
    import os

    from mlplatform.serving import rollout as ro
    from mlplatform.serving.tokens import ADMIN_TOKEN_ENV, local_tokens
    from mlplatform.serving.traffic import LocalRouterBackend

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
            else LocalRouterBackend(url).serves
        )
        stopping = ro.stop_on_sigterm()  # Kubernetes stops the pod: finish in order
        ro.watch(
            cfg,
            lambda: ro.main(args, exit_code=False, stopping=stopping),
            interval,
            stop=stopping.is_set,
            served=served,
            wait=stopping.wait,
            deploy_hint="make canary" if backend == "kserve" else "`mlplatform serve` starts it",
        )
    else:
        if backend == "local":
            _await_local_canary(cfg, config, LocalRouterBackend(url), canary_wait)
        ro.main(args)


def _await_local_canary(
    cfg: PlatformConfig, config: Path, router: LocalRouterBackend, timeout: float
) -> None:
    """The challenger exists and the local router's canary serves it (``serve`` starts one for
    a challenger registered after it started), else one line saying what to run."""
    from mlplatform.serving.rollout_watch import await_canary, challenger_to_roll_out

    version, rolled_back = challenger_to_roll_out(cfg, config)
    if rolled_back:  # the controller finishes that rollback; no canary needed
        return
    hint = (
        f"is `mlplatform serve --config {config}` running? Restart it if it was started with "
        "--no-canary or by an older mlplatform"
    )
    await_canary(router, version, timeout, hint, say=_plain)
