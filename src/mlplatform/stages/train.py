"""Stage 3, train: gradient descent on the normalized splits; the model, metrics, loss curve."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlplatform.config import PlatformConfig
from mlplatform.core.gd import EpochCallback
from mlplatform.core.training import TrainingOutcome, split_frame, train_model
from mlplatform.reporting.plots import loss_curve_png
from mlplatform.stages.io import read_data, read_splits, write_json
from mlplatform.stages.normalize import read_normalization


@dataclass(frozen=True)
class TrainOutputs:
    outcome: TrainingOutcome
    files: dict[str, Path]


def train_job(
    cfg: PlatformConfig, data: Path | None = None, on_epoch: EpochCallback | None = None
) -> TrainOutputs:
    """Split, normalize (train rows only), train by GD, evaluate; write model, metrics, plots."""
    path = data or cfg.data_path
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


def train_step(
    cfg: PlatformConfig, scaler: Path, split_in: dict[str, Path], model_out: Path, curve_out: Path
) -> dict[str, Any]:
    """GD with the stored scaler; writes model.json and the loss curve; returns the metrics doc."""
    outcome = train_model(cfg, read_splits(split_in), norm=read_normalization(scaler))
    outcome.model.save(model_out)
    loss_curve_png(outcome.fit, curve_out, f"{cfg.model_name}: {cfg.train.loss} loss")
    return metrics_document(cfg, outcome)


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
