"""The worked examples: the article's loop (section 2.7) and MSE vs MAE vs Huber under outliers."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mlplatform.config import TrainConfig
from mlplatform.core.gd import FitResult, fit
from mlplatform.core.robustness import compare_losses
from mlplatform.reporting.plots import loss_comparison_png
from mlplatform.stages.io import write_json

#: The article's worked example (section 2.7): one feature plus a bias column.
ARTICLE_X = np.array([[6.7], [4.6], [3.5], [5.5]])
ARTICLE_Y = np.array([9.1, 5.9, 4.6, 6.7])
ARTICLE_THETA0 = np.array([0.049, -0.34])


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
