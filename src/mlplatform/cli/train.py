"""Commands of the model work: data, train, explain, predict, the demo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from mlplatform.cli.base import (
    ConfigOpt,
    app,
    console,
    epoch_progress,
    err_console,
    friendly,
    library_output,
    print_metrics,
)
from mlplatform.config import PlatformConfig, load_config

data_app = typer.Typer(help="Generate the dataset; `data push`: put a data version in a remote.")
app.add_typer(data_app, name="data")


@data_app.callback(invoke_without_command=True)
@friendly
def data(
    ctx: typer.Context,
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
    if ctx.invoked_subcommand is not None:
        return
    from mlplatform.stages import generate_data

    cfg = load_config(config)
    overrides = {k: v for k, v in {"shift": shift, "rows": rows}.items() if v is not None}
    if overrides:
        cfg = cfg.with_overrides(data=overrides)
    path = generate_data(cfg, out)
    console.print(f"wrote {cfg.data.dataset} data → {path}")


@data_app.command("push")
@friendly
def data_push(
    config: ConfigOpt = Path("configs/house-price.yaml"),
    remote: Annotated[
        str | None,
        typer.Option(
            help="DVC remote URL, e.g. s3://bucket/dvc (default data.remote, else .dvc/)."
        ),
    ] = None,
    data_file: Annotated[
        Path | None, typer.Option("--data", help="Parquet file (default data/<model>.parquet).")
    ] = None,
) -> None:
    """Push the model's data file to a DVC remote; print its md5 (the value of data.version)."""
    from mlplatform.stages import push_data

    cfg = load_config(config)
    md5, target = push_data(cfg, remote, data_file)
    err_console.print(f"pushed {data_file or cfg.data_path} → {target} as data version:")
    print(md5)


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
    from mlplatform.stages import generate_data, train_job

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
    print_metrics(f"{cfg.model_name} metrics", outputs.outcome.metrics)
    for name, path in outputs.files.items():
        console.print(f"  {name:<13} {path}")


def _article(example: str) -> None:
    from mlplatform.errors import ConfigError
    from mlplatform.stages.examples import article_example

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
    from mlplatform.stages.examples import compare_losses_job

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
    """The whole local loop: train, serve, drift, alert, retrain, canary, promote, lineage."""
    from mlplatform.demo import run_demo

    with library_output(out) as log:
        if log is not None:
            console.print(f"task and library logs → {log} (--verbose shows them here)")
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
    from mlplatform.cli.explain import explain_command

    cfg = load_config(config)
    explain_command(cfg, model, row, entity_id, model_report, out, seed, console)
