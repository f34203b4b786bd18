"""``mlplatform explain``: pick the row(s), explain, print, write the reports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console

from mlplatform.config import PlatformConfig
from mlplatform.core.model import LinearModel
from mlplatform.core.training import split_frame
from mlplatform.errors import DataError
from mlplatform.reporting.explain_report import (
    contributions_png,
    slopes_png,
    write_instance_report,
    write_model_report,
)
from mlplatform.stages.explain import explain_model_job, explain_row_job
from mlplatform.stages.io import read_data, write_json


def pick_row(
    cfg: PlatformConfig, model: LinearModel, data: pd.DataFrame, row: str | None, entity: int | None
) -> tuple[pd.DataFrame, str]:
    """The one row to explain (from JSON or an entity id) and a name for its files."""
    if (row is None) == (entity is None):
        raise DataError("give exactly one of --row JSON or --entity-id N")
    if row is not None:
        try:
            parsed = json.loads(row)
        except json.JSONDecodeError as exc:
            raise DataError(f"--row is not valid JSON: {exc.msg}") from None
        return model.frame([parsed]), "row"
    rows = data[data[cfg.entity] == entity]
    if rows.empty:
        raise DataError(f"unknown {cfg.entity} {entity}: not in {cfg.data_path}")
    return rows.sort_values(cfg.timestamp).tail(1).reset_index(drop=True), f"{cfg.entity}-{entity}"


def explain_command(
    cfg: PlatformConfig,
    model_path: Path | None,
    row: str | None,
    entity: int | None,
    global_report: bool,
    out: Path | None,
    seed: int,
    console: Console,
) -> dict[str, Path]:
    model = LinearModel.load(model_path or cfg.model_dir / "model.json")
    data = read_data(cfg.data_path)
    splits = split_frame(cfg, data)
    out = out or cfg.model_dir / "explanations"
    rng = np.random.default_rng(seed)
    if global_report:
        result = explain_model_job(cfg, model, splits.train, splits.test, rng)
        for name, value in result.as_metrics().items():
            console.print(f"  {name:<32} {value:.4g}")
        view = result.global_view
        console.print(f"mean |contribution| (compared with {view.reference_name}), mean |β|:")
        slopes = dict(view.ranking())
        for name, value in view.ranking("contribution"):
            console.print(f"  {name:<32} {value:<10.4g} {slopes[name]:.4g}")
        files = {
            "html": write_model_report(result, out / "model_report.html", cfg.model_name),
            "json": write_json(out / "model_quality.json", result.as_metrics()),
        }
        _print_files(files, console)
        return files
    frame, name = pick_row(cfg, model, data, row, entity)
    ex = explain_row_job(cfg, model, splits.train, frame, rng)
    console.print(ex.summary(), highlight=False)
    for key, value in ex.quality.as_dict().items():
        console.print(f"  {key:<28} {value:.4g}")
    files = {
        "png": out / f"{name}_contributions.png",
        "slopes": out / f"{name}_slopes.png",
        "html": write_instance_report(ex, out / f"{name}.html", f"{cfg.model_name}: {name}"),
        "json": write_json(out / f"{name}.json", ex.to_dict()),
    }
    contributions_png(ex.lime, files["png"])
    slopes_png(ex.lime, files["slopes"])
    _print_files(files, console)
    return files


def _print_files(files: dict[str, Path], console: Console) -> None:
    console.print("written:")
    for kind, path in files.items():
        console.print(f"  {kind:<6} {path}", highlight=False)
