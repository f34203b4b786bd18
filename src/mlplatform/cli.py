"""The ``mlplatform`` command line. Every command has ``--help``; errors exit with code 2."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mlplatform.config import PlatformConfig, load_config
from mlplatform.core.gd import EpochCallback
from mlplatform.errors import PlatformError

app = typer.Typer(
    help="mlplatform: gradient descent, explanations and the MLOps loop, on a laptop or a cluster.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])

ConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", help="Config YAML (see configs/).", show_default=True)
]


def friendly(func: F) -> F:
    """Turn platform and I/O errors into one readable line and exit code 2 (no traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except PlatformError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
            raise typer.Exit(2) from None
        except OSError as exc:
            err_console.print(f"[bold red]error:[/] {exc.strerror or exc}: {exc.filename or ''}")
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


@contextmanager
def epoch_progress(label: str, total: int) -> Iterator[EpochCallback]:
    """A progress bar fed by the trainer's per-epoch callback."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console, transient=False) as progress:
        task = progress.add_task(label, total=total, loss="-")

        def on_epoch(epoch: int, loss: float, val: float | None) -> None:
            if epoch % 25 == 0 or epoch == total:
                shown = f"{loss:.4g}" + (f" (val {val:.4g})" if val is not None else "")
                progress.update(task, completed=epoch, loss=shown)

        yield on_epoch
        progress.update(task, completed=total)


def _print_metrics(title: str, metrics: dict[str, dict[str, float]]) -> None:
    table = Table(title=title)
    names = list(next(iter(metrics.values())))
    table.add_column("split")
    for n in names:
        table.add_column(n, justify="right")
    for split, values in metrics.items():
        table.add_row(split, *(f"{values[n]:,.4g}" for n in names))
    console.print(table)


@app.command()
@friendly
def data(
    config: ConfigOpt = Path("configs/house-price.yaml"),
    out: Annotated[
        Path | None, typer.Option(help="Parquet path (default data/<model>.parquet).")
    ] = None,
    shift: Annotated[
        float | None, typer.Option(help="Override data.shift (drifted world).")
    ] = None,
    rows: Annotated[int | None, typer.Option(help="Override data.rows.")] = None,
) -> None:
    """Generate the configured dataset (deterministic in data.seed) and write Parquet."""
    from mlplatform.jobs import generate_data

    cfg = load_config(config)
    overrides = {k: v for k, v in {"shift": shift, "rows": rows}.items() if v is not None}
    if overrides:
        cfg = cfg.with_overrides(data=overrides)
    path = generate_data(cfg, out)
    console.print(f"wrote {cfg.data.dataset} data → {path}")


@app.command()
@friendly
def train(
    config: ConfigOpt = Path("configs/house-price.yaml"),
    data_file: Annotated[Path | None, typer.Option("--data", help="Parquet input.")] = None,
    example: Annotated[
        str | None, typer.Option(help="Run a worked example instead: 'article'.")
    ] = None,
) -> None:
    """Train a model by gradient descent; write model, metrics, coefficients and the loss curve."""
    if example is not None:
        _article(example)
        return
    from mlplatform.jobs import generate_data, train_job

    cfg = load_config(config)
    if data_file is None and not (cfg.data.data_dir / f"{cfg.model_name}.parquet").exists():
        generate_data(cfg)
    with epoch_progress(f"train {cfg.model_name}", cfg.train.epochs) as on_epoch:
        outputs = train_job(cfg, data_file, on_epoch)
    _report_training(cfg, outputs)


def _report_training(cfg: PlatformConfig, outputs: Any) -> None:
    fit = outputs.outcome.fit
    stop = "early stop" if fit.stopped_early else "all epochs"
    console.print(
        f"{cfg.model_name}: {fit.epochs_run} epochs ({stop}), best epoch {fit.best_epoch}"
    )
    _print_metrics(f"{cfg.model_name} metrics", outputs.outcome.metrics)
    for name, path in outputs.files.items():
        console.print(f"  {name:<13} {path}")


def _article(example: str) -> None:
    from mlplatform.errors import ConfigError
    from mlplatform.jobs import article_example

    if example != "article":
        raise ConfigError(f"unknown example {example!r}; available: 'article'")
    r = article_example()
    console.print("Article example: X = [[6.7],[4.6],[3.5],[5.5]] + bias, y = [9.1, 5.9, 4.6, 6.7]")
    console.print("θ₀ = (w 0.049, b -0.34), η = 0.01, 1000 epochs, gradient (2/N)·Xᵀ(ŷ − y)")
    console.print(f"loss (MSE): {r.train_loss[0]:.4f} → {r.train_loss[-1]:.4f}")
    console.print(f"w = {r.weights[0]:.6f}")
    console.print(f"b = {r.bias:.6f}")


@app.command("compare-losses")
@friendly
def compare_losses_cmd(
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("artifacts/loss-comparison"),
    seed: Annotated[int, typer.Option(help="Data seed.")] = 0,
) -> None:
    """MSE vs MAE vs Huber on data with outliers: table, JSON and a PNG."""
    from mlplatform.jobs import compare_losses_job

    files = compare_losses_job(out, seed)
    console.print(files["table"].read_text(encoding="utf-8"))
    for name, path in files.items():
        console.print(f"  {name:<6} {path}")


@app.command()
@friendly
def predict(
    model: Annotated[Path, typer.Option(help="model.json written by `train`.")],
    row: Annotated[str, typer.Option(help="A row as JSON: a list in feature order or an object.")],
) -> None:
    """Predict one row with a saved model (the same code path the server uses)."""
    from mlplatform.core.model import LinearModel
    from mlplatform.errors import DataError

    m = LinearModel.load(model)
    try:
        parsed = json.loads(row)
    except json.JSONDecodeError as exc:
        raise DataError(f"--row is not valid JSON: {exc.msg}") from None
    value = float(m.predict(m.frame([parsed]))[0])
    console.print(json.dumps({"model": m.name, "prediction": value}))


@app.command()
@friendly
def demo(
    out: Annotated[Path, typer.Option(help="Artifacts root.")] = Path("artifacts"),
) -> None:
    """The local loop as far as it exists: data → normalize → train (house, credit) → report."""
    from mlplatform.demo import run_demo

    run_demo(out, console)


@app.command()
@friendly
def explain(
    config: ConfigOpt = Path("configs/credit-risk.yaml"),
    model: Annotated[
        Path | None, typer.Option(help="model.json (default artifacts/<model>/).")
    ] = None,
    row: Annotated[
        str | None, typer.Option(help="A row as JSON (list in feature order or object).")
    ] = None,
    entity_id: Annotated[int | None, typer.Option(help="Explain this entity's latest row.")] = None,
    model_report: Annotated[
        bool, typer.Option("--global", help="Explain a sample of test rows: per-model report.")
    ] = False,
    out: Annotated[Path | None, typer.Option(help="Output folder.")] = None,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
) -> None:
    """LIME contributions, the anchor rule and explanation quality, with PNG and HTML reports."""
    from mlplatform.explain_cli import explain_command

    cfg = load_config(config)
    explain_command(cfg, model, row, entity_id, model_report, out, seed, console)


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
        stop.wait()
        console.print("stopping ...")
    console.print("stopped; no server left running")


features_app = typer.Typer(help="The Feast feature store.", no_args_is_help=True)
app.add_typer(features_app, name="features")


@features_app.command("materialize")
@friendly
def features_materialize(config: ConfigOpt = Path("configs/house-price.yaml")) -> None:
    """Register the model's feature views (feast apply) and fill the online store."""
    from datetime import UTC, datetime

    from mlplatform.features import apply, feature_store, materialize
    from mlplatform.jobs import data_path, generate_data

    cfg = load_config(config)
    if not data_path(cfg).exists():
        generate_data(cfg)
    store = feature_store(cfg.feature_store.repo_dir, cfg.feature_store.store_yaml)
    apply(store, [cfg])
    materialize(store, end=datetime.now(UTC))
    console.print(f"{cfg.model_name}: online store filled from {data_path(cfg)}")


@app.command()
@friendly
def rollout(
    config: ConfigOpt = Path("configs/house-price.yaml"),
    backend: Annotated[str, typer.Option(help="local (the router) or kserve.")] = "local",
    router_url: Annotated[str | None, typer.Option(help="Default: serve.host:router_port.")] = None,
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
    from mlplatform.serving import rollout as ro

    cfg = load_config(config)
    if backend == "local":
        url = router_url or f"http://{cfg.serve.host}:{cfg.serve.router_port}"
        args = ["--config", str(config), "--router-url", url]
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
        raise PlatformError(f"unknown backend {backend!r}; use 'local' or 'kserve'")
    if watch:
        ro.watch(cfg, lambda: ro.main(args, exit_code=False), interval)
    else:
        ro.main(args)


@app.command()
@friendly
def monitor(
    config: ConfigOpt = Path("configs/house-price.yaml"),
    since: Annotated[float | None, typer.Option(help="Window start (Unix time).")] = None,
    until: Annotated[float | None, typer.Option(help="Window end (Unix time).")] = None,
) -> None:
    """Data drift, concept drift and health of a window of logged traffic; write the alert."""
    from mlplatform.monitoring.monitor import reference_frame, run_monitor

    cfg = load_config(config)
    r = run_monitor(cfg, cfg.serve.payload_db, reference_frame(cfg), since, until)
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
    console.print(f"report: {r.html_path or r.json_path}")


@app.command()
@friendly
def retrain(
    config: ConfigOpt = Path("configs/house-price.yaml"),
    backend: Annotated[str, typer.Option(help="local (kfp.local) or kfp (the KFP API).")] = "local",
    kfp_host: Annotated[
        str | None, typer.Option(envvar="KFP_HOST", help="KFP API URL (kfp backend).")
    ] = None,
    pipeline: Annotated[Path, typer.Option(help="Compiled pipeline (local backend).")] = Path(
        "pipelines/training_pipeline.yaml"
    ),
) -> None:
    """Start one training run per open drift alert (exactly once, crash-safe)."""
    from mlplatform.retrain import kfp_starter, local_starter, retrain_pending

    cfg = load_config(config)
    if backend == "local":
        start = local_starter(pipeline, Path.cwd())
    elif backend == "kfp" and kfp_host:
        start = kfp_starter(kfp_host)
    else:
        raise PlatformError("use --backend local, or --backend kfp with --kfp-host (or KFP_HOST)")
    outcomes = retrain_pending(cfg, start)
    for o in outcomes:
        console.print(
            f"alert {o.alert_id}: {o.action} run={o.run_id} version={o.version}: {o.message}"
        )
    if not outcomes:
        console.print(f"{cfg.model_name}: no drift alert waiting for a retrain")


pipeline_app = typer.Typer(
    help="The KFP training pipeline: compile, run locally.", no_args_is_help=True
)
app.add_typer(pipeline_app, name="pipeline")


@pipeline_app.command("compile")
@friendly
def pipeline_compile(
    out: Annotated[Path, typer.Option(help="YAML to write.")] = Path(
        "pipelines/training_pipeline.yaml"
    ),
) -> None:
    """Compile the pipeline (the YAML to upload in the KFP UI) and each component's YAML."""
    import sys

    sys.path.insert(0, str(Path.cwd()))
    from pipelines.training_pipeline import compile_components, compile_pipeline

    console.print(f"compiled → {compile_pipeline(out)}")
    for path in compile_components():
        console.print(f"component → {path}")


@pipeline_app.command("run")
@friendly
def pipeline_run(
    config: ConfigOpt = Path("configs/house-price.yaml"),
    pipeline: Annotated[Path, typer.Option(help="Compiled pipeline YAML.")] = Path(
        "pipelines/training_pipeline.yaml"
    ),
) -> None:
    """Run the compiled pipeline locally (kfp.local, no cluster): data → ... → register."""
    from mlplatform.jobs import data_path, generate_data
    from mlplatform.pipeline_runner import run_local

    cfg = load_config(config)
    if not data_path(cfg).exists():
        generate_data(cfg)
    run = run_local(cfg, pipeline)
    console.print(f"gate: {'passed' if run.gate.get('passed') else 'not passed'}")
    for c in run.gate.get("checks", []):
        console.print(f"  {c['name']} = {c['value']:.4g} (needs {c['op']} {c['threshold']:.4g})")
    console.print(f"registered {cfg.model_name} version {run.version} as challenger")
    console.print(f"artifacts: {run.run_dir}")


@app.command()
@friendly
def lineage(
    model: Annotated[str, typer.Argument(help="Registered model name, e.g. house-price.")],
    config: Annotated[
        Path | None, typer.Option(help="Config (default configs/<model>.yaml).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """What is deployed: version, data version, validation, who and when (champion/challenger)."""
    from mlplatform.lineage import lineage_table
    from mlplatform.registry.mlflow_registry import Registry, lineage_document

    cfg = load_config(config or Path("configs") / f"{model}.yaml")
    doc = lineage_document(Registry(cfg.registry), model)
    if as_json:
        print(json.dumps(doc, indent=2))
    elif not doc["aliases"]:
        raise PlatformError(
            f"model {model!r} has no champion or challenger in {cfg.registry.tracking_uri}"
        )
    else:
        console.print(lineage_table(doc))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
