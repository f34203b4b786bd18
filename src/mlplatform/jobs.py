"""Jobs: core calls plus the files they write. The CLI, the KFP components and the demo call these.

Each job takes the one :class:`~mlplatform.config.PlatformConfig` and returns the
paths it wrote, so callers never guess file names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlplatform.config import PlatformConfig, TrainConfig
from mlplatform.core.gd import EpochCallback, FitResult, fit
from mlplatform.core.robustness import compare_losses
from mlplatform.core.training import TrainingOutcome, generate, split_frame, train_model
from mlplatform.errors import DataError
from mlplatform.reporting.plots import loss_comparison_png, loss_curve_png

#: The article's worked example (section 2.7): one feature plus a bias column.
ARTICLE_X = np.array([[6.7], [4.6], [3.5], [5.5]])
ARTICLE_Y = np.array([9.1, 5.9, 4.6, 6.7])
ARTICLE_THETA0 = np.array([0.049, -0.34])


def data_path(cfg: PlatformConfig) -> Path:
    return cfg.data.data_dir / f"{cfg.model_name}.parquet"


def write_json(path: Path, obj: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str), encoding="utf-8")
    tmp.replace(path)
    return path


def generate_data(cfg: PlatformConfig, out: Path | None = None) -> Path:
    """Generate the configured dataset and write it as Parquet."""
    path = out or data_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    generate(cfg.data).to_parquet(path, index=False)
    return path


def read_data(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise DataError(f"no data at {path}: run `mlplatform data --config ...` first")
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise DataError(f"{path} is not a readable Parquet file: {exc}") from None


@dataclass(frozen=True)
class TrainOutputs:
    outcome: TrainingOutcome
    files: dict[str, Path]


def train_job(
    cfg: PlatformConfig, data: Path | None = None, on_epoch: EpochCallback | None = None
) -> TrainOutputs:
    """Split, normalize (train rows only), train by GD, evaluate; write model, metrics, plots."""
    path = data or data_path(cfg)
    splits = split_frame(cfg, read_data(path))
    outcome = train_model(cfg, splits, on_epoch, metadata={"data_path": str(path)})
    out = cfg.model_dir
    files = {
        "model": outcome.model.save(out / "model.json"),
        "metrics": write_json(out / "metrics.json", metrics_document(cfg, outcome)),
        "coefficients": write_json(out / "coefficients.json", outcome.model.coefficients()),
        "loss_curve": loss_curve_png(
            outcome.fit, out / "loss_curve.png", f"{cfg.model_name}: {cfg.train.loss} loss"
        ),
    }
    return TrainOutputs(outcome, files)


def metrics_document(cfg: PlatformConfig, outcome: TrainingOutcome) -> dict[str, Any]:
    r = outcome.fit
    return {
        "model": cfg.model_name,
        "task": cfg.task,
        "loss": cfg.train.loss,
        "metrics": outcome.metrics,
        "epochs_run": r.epochs_run,
        "best_epoch": r.best_epoch,
        "stopped_early": r.stopped_early,
        "final_train_loss": r.train_loss[r.best_epoch],
        "final_val_loss": r.val_loss[r.best_epoch] if r.val_loss else None,
        "train_loss_history": list(r.train_loss),
        "val_loss_history": list(r.val_loss),
    }


def article_example(epochs: int = 1000, learning_rate: float = 0.01) -> FitResult:
    """The article's loop: MSE, θ₀ = (w 0.049, b −0.34), η 0.01, 1000 epochs, no normalization."""
    cfg = TrainConfig(
        loss="mse", learning_rate=learning_rate, epochs=epochs, early_stopping_patience=None
    )
    return fit(ARTICLE_X, ARTICLE_Y, cfg, np.random.default_rng(0), theta0=ARTICLE_THETA0)


def compare_losses_job(out_dir: Path, seed: int = 0) -> dict[str, Path]:
    """MSE vs MAE vs Huber on data with outliers → PNG + Markdown table + JSON."""
    cmp = compare_losses(np.random.default_rng(seed))
    rows = cmp.rows()
    lines = ["| loss | slope | intercept | slope error | epochs |", "|---|---|---|---|---|"]
    lines += [
        f"| {r['loss']} | {r['slope']:.3f} | {r['intercept']:.3f} | {r['slope_error']:.3f} "
        f"| {r['epochs']} |"
        for r in rows
    ]
    table = out_dir / "loss_comparison.md"
    out_dir.mkdir(parents=True, exist_ok=True)
    table.write_text(
        f"True slope {cmp.true_slope}, intercept {cmp.true_intercept}; "
        f"{int(cmp.is_outlier.sum())} of {cmp.y.size} targets are gross outliers.\n\n"
        + "\n".join(lines)
        + "\n",
        encoding="utf-8",
    )
    return {
        "table": table,
        "json": write_json(out_dir / "loss_comparison.json", rows),
        "plot": loss_comparison_png(cmp, out_dir / "loss_comparison.png"),
    }
