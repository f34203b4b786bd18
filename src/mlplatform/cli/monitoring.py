"""Commands of the monitoring loop: monitor (drift, health, the alert) and retrain (one
training run per alert, on the new data)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.padding import Padding
from rich.table import Table

from mlplatform.cli.base import ConfigOpt, app, console, friendly, library_output, rollout_hint
from mlplatform.config import PlatformConfig, load_config
from mlplatform.errors import DataError, PlatformError, UsageError

if TYPE_CHECKING:
    from mlplatform.core.drift import ConceptDrift, DriftReport, SystemHealth
    from mlplatform.monitoring.monitor import MonitorResult
    from mlplatform.orchestration.retrain import RetrainOutcome, Starter

TIME_HELP = "ISO-8601 UTC (2026-01-01T10:00:00Z) or Unix seconds; with --{} for a backfill."


@app.command()
@friendly
def monitor(
    config: ConfigOpt = Path("configs/house-price.yaml"),
    since: Annotated[
        str | None, typer.Option(help="Window start: " + TIME_HELP.format("until"))
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Window end: " + TIME_HELP.format("since"))
    ] = None,
    aligned: Annotated[
        bool,
        typer.Option(
            "--aligned",
            help="Judge the last complete window of the monitor.window_seconds grid, as the "
            "scheduled CronJob does (reruns name the same window and alert). Default: the last "
            "monitor.window_seconds up to now.",
        ),
    ] = False,
) -> None:
    """Data drift (against the champion's reference in the registry), concept drift and
    health of the traffic logged in the last monitor.window_seconds up to now (or --aligned,
    or --since/--until); write the report and the alert."""
    from mlplatform.monitoring.monitor import reference_frame, run_monitor
    from mlplatform.monitoring.windows import parse_time

    cfg = load_config(config)
    start, end = (None if t is None else parse_time(t) for t in (since, until))
    with library_output(cfg.artifacts_dir):  # MLflow's and Evidently's output: to the log
        reference = reference_frame(cfg)
        r = run_monitor(cfg, cfg.serve.payload_store, reference, start, end, aligned=aligned)
        stale = _stale_data(cfg) if r.alert is not None and r.alert.status == "open" else None
    how = "backfill" if start is not None else "aligned" if aligned else "up to now"
    print_monitor(r, how, config, stale)


def _stale_data(cfg: PlatformConfig) -> str | None:
    """Why the training data in place cannot fix the alert (it is the champion's), None when
    it is new data, "" when that cannot be told here (the retrain says what is missing)."""
    from mlplatform.orchestration.retrain_data import same_data_as_champion

    try:
        return same_data_as_champion(cfg)
    except (PlatformError, OSError):
        return ""


def print_monitor(
    r: MonitorResult, how: str = "", config: Path | None = None, stale: str | None = ""
) -> None:
    """The result as aligned lines and a per-feature table (the JSON report has it all).
    ``stale``: why the data in place would retrain the champion's own model (None: it is new
    data; "": not checked)."""
    from mlplatform.monitoring.windows import iso

    kind = f", {how}" if how else ""
    line = _line
    line(r.model, f"window {iso(r.window.start)} → {iso(r.window.end)}{kind}: {r.rows} rows")
    if r.drift is not None:
        line("data drift", _drift_text(r.drift))
        console.print(Padding(_drift_table(r.drift), (0, 0, 0, 15), expand=False))
    if r.concept is not None:
        line("concept drift", _concept_text(r.concept))
    line("health", ("ok: " if r.healthy else "NOT ok: ") + _health_text(r.health))
    for note in r.notes:
        line("note", note)
    if r.alert is None:
        line("alert", "none")
    else:
        verb = "written" if r.alert_created else "already recorded for this window"
        line("alert", f"ALERT {r.alert.alert_id} ({r.alert.status}) {verb}: {', '.join(r.reasons)}")
        if r.alert.status == "open":
            cmd = f"mlplatform retrain --config {config}" if config else "mlplatform retrain"
            if stale is None:
                line("next", f"`{cmd}` trains on the new data in place")
            elif stale:
                line("next", f"{stale}: put new data in place, then `{cmd}` (see its --help)")
            else:
                line("next", f"put the new data in place, then `{cmd}` (see its --help)")
    line("report", r.html_url or r.json_url)


def _line(label: str, text: str) -> None:
    console.print(f"{label:<14} {text}", highlight=False, markup=False)


def _drift_text(d: DriftReport) -> str:
    verdict = "DRIFT" if d.dataset_drift else "no drift"
    return (
        f"{verdict}: {len(d.drifted)} of {len(d.features)} features drifted ({d.share:.0%}; "
        f"dataset drift at ≥ {d.drift_share:.0%})"
    )


def _drift_table(d: DriftReport) -> Table:
    table = Table(box=None, padding=(0, 2, 0, 0))
    for col in ("feature", "test", "statistic", "p-value", "drifted"):
        table.add_column(col, justify="right" if col in ("statistic", "p-value") else "left")
    for f in d.features:
        p = "-" if f.p_value is None else f"{f.p_value:.3g}"
        table.add_row(f.name, f.method, f"{f.statistic:.4f}", p, "yes" if f.drifted else "no")
    return table


def _concept_text(c: ConceptDrift) -> str:
    verdict = "DRIFT" if c.drifted else "no drift"
    return (
        f"{verdict}: {c.metric} {c.error:.4g} on {c.n_labelled} labelled rows = {c.ratio:.2f} × "
        f"the validation {c.metric} {c.baseline_error:.4g} (drift above {1 + c.tolerance:.2f} ×)"
    )


def _health_text(h: SystemHealth) -> str:
    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f} ms"

    return (
        f"{h.requests} requests, {h.errors} error{'' if h.errors == 1 else 's'} "
        f"({h.error_rate:.1%}), "
        f"latency p50 {ms(h.p50_latency_ms)}, p95 {ms(h.p95_latency_ms)}"
    )


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
    data_file: Annotated[
        Path | None, typer.Option("--data", help="Train on this Parquet file (local backend).")
    ] = None,
    data_version: Annotated[
        str | None,
        typer.Option(
            help="Train on this DVC data version (the md5 `mlplatform data push` prints)."
        ),
    ] = None,
    same_data: Annotated[
        bool,
        typer.Option("--same-data", help="Retrain even on the data the champion was trained on."),
    ] = False,
) -> None:
    """Start one training run per open drift alert (exactly once, crash-safe), on new data:
    --data, --data-version, else data.version, else data/<model>.parquet (e.g. as rewritten by
    `mlplatform data --shift 1.0`). Locally it refuses the champion's own data."""
    from mlplatform.orchestration.retrain import retrain_pending
    from mlplatform.orchestration.retrain_data import alerts_waiting, with_training_data

    if data_file is not None and backend != "local":
        raise UsageError(
            "--data is for the local backend; push the file (`mlplatform data push`) "
            "and give --data-version"
        )
    cfg = with_training_data(load_config(config), data_file, data_version)
    with library_output(cfg.artifacts_dir) as log:  # task and library output: to the log
        start = _starter(cfg, backend, kfp_host, pipeline, log)
        if alerts_waiting(cfg):
            _check_new_data(cfg, backend, same_data)
        outcomes = retrain_pending(cfg, start)
        for o in outcomes:
            console.print(_outcome_text(cfg, o), highlight=False, markup=False)
    if not outcomes:
        console.print(f"{cfg.model_name}: no drift alert waiting for a retrain")
    elif backend == "local" and any(o.version is not None for o in outcomes):
        console.print(rollout_hint(config, "the challenger"), highlight=False, markup=False)


def _check_new_data(cfg: PlatformConfig, backend: str, same_data: bool) -> None:
    """Refuse (local) or flag (kfp: the chart's dataVersion decides) the champion's data."""
    from mlplatform.orchestration.retrain_data import same_data_as_champion

    md5 = cfg.data.version if backend == "kfp" else None
    problem = None if backend == "kfp" and md5 is None else same_data_as_champion(cfg, md5)
    if problem is None or same_data:
        return
    if backend == "kfp":
        console.print(f"note: {problem}; the run will learn nothing new", highlight=False)
        return
    raise DataError(
        f"{problem}: a retrain on it gives the same model. Put the new data in place first "
        "(write it to data/<model>.parquet, e.g. `mlplatform data --shift 1.0`, or give "
        "--data FILE or --data-version MD5), or pass --same-data to retrain on it anyway"
    )


def _starter(
    cfg: PlatformConfig,
    backend: str,
    kfp_host: str | None,
    pipeline: Path | None,
    log: Path | None = None,
) -> Starter:
    """The backend's starter, announcing each run before it starts; kfp.local's task logs go
    to ``log`` (None: the terminal, under --verbose)."""
    from mlplatform.orchestration.retrain import kfp_starter, local_starter

    if backend == "local":
        where = f" (task logs: {log})" if log else ""
        inner, how = local_starter(pipeline, Path.cwd(), log), f"with kfp.local{where}"
    elif backend == "kfp" and kfp_host:
        inner, how = kfp_starter(kfp_host), f"on KFP at {kfp_host}"
    else:
        raise UsageError("use --backend local, or --backend kfp with --kfp-host (or KFP_HOST)")

    def start(run_cfg: PlatformConfig, trigger: str) -> tuple[str, str | None]:
        v = run_cfg.data.version
        data = f"version {v}" if v else str(run_cfg.data_path)
        console.print(f"{trigger}: starting a training run on data {data} {how}", markup=False)
        return inner(run_cfg, trigger)

    return start


def _outcome_text(cfg: PlatformConfig, o: RetrainOutcome) -> str:
    head = f"alert {o.alert_id}:"
    if o.action == "started" and o.version is None:
        return f"{head} run {o.run_id} started; the next retrain records its model version"
    if o.action in ("started", "recovered") and o.version is not None:
        verb = "finished" if o.action == "started" else "recovered"
        run = f" run {o.run_id}" if o.run_id else ""
        return f"{head}{run} {verb}: {_version_text(cfg, o.version)}"
    return f"{head} {o.action}: {o.message}"


def _version_text(cfg: PlatformConfig, version: str) -> str:
    from mlplatform.registry.mlflow_registry import Registry

    aliases = Registry(cfg.registry).version(cfg.model_name, version).aliases
    held = ", ".join(sorted(aliases)) or "none"
    return f"registered {cfg.model_name} v{version} (aliases: {held})"
