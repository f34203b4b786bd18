"""Training charts as PNG files (matplotlib, headless Agg backend)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from mlplatform.core.gd import FitResult
from mlplatform.core.robustness import LossComparison


def loss_curve_png(result: FitResult, path: Path, title: str) -> Path:
    """Training (and validation) objective per epoch, log scale when it spans decades."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    ax.plot(result.train_loss, label="train")
    if result.val_loss:
        ax.plot(result.val_loss, label="validation")
    ax.axvline(result.best_epoch, color="grey", ls=":", label=f"best epoch {result.best_epoch}")
    losses = np.asarray(result.train_loss)
    if losses.min() > 0 and losses.max() / losses.min() > 100:
        ax.set_yscale("log")
    ax.set(xlabel="epoch", ylabel="loss", title=title)
    ax.legend()
    return _save(fig, path)


def loss_comparison_png(cmp: LossComparison, path: Path) -> Path:
    """Scatter with outliers highlighted and the line each loss fitted."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=100)
    ax.scatter(cmp.x[~cmp.is_outlier], cmp.y[~cmp.is_outlier], s=8, c="#888", label="data")
    ax.scatter(cmp.x[cmp.is_outlier], cmp.y[cmp.is_outlier], s=14, c="#d62728", label="outliers")
    grid = np.linspace(0, 1, 50)
    ax.plot(grid, cmp.true_slope * grid + cmp.true_intercept, "k--", label="truth")
    for name, r in cmp.fits.items():
        ax.plot(grid, r.weights[0] * grid + r.bias, label=f"{name} (slope {r.weights[0]:.2f})")
    ax.set(xlabel="x", ylabel="y", title="MSE vs MAE vs Huber on data with outliers")
    ax.legend(fontsize=8)
    return _save(fig, path)


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
