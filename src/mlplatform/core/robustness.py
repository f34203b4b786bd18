"""The article's loss comparison: MSE vs MAE vs Huber on a line with outliers.

Data: y = slope·x + intercept + ε with x ∈ [0, 1], then a share of the targets is
pushed far up (gross errors). MSE's slope is pulled towards the outliers; MAE and
Huber stay near the truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from mlplatform.config import TrainConfig
from mlplatform.core.gd import FitResult, fit
from mlplatform.core.losses import LossName

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class LossComparison:
    x: FloatArray
    y: FloatArray
    is_outlier: NDArray[np.bool_]
    true_slope: float
    true_intercept: float
    fits: dict[str, FitResult]

    def rows(self) -> list[dict[str, float | str]]:
        """One row per loss: fitted slope/intercept and the slope error."""
        return [
            {
                "loss": name,
                "slope": float(r.weights[0]),
                "intercept": r.bias,
                "slope_error": abs(float(r.weights[0]) - self.true_slope),
                "epochs": r.epochs_run,
            }
            for name, r in self.fits.items()
        ]


def outlier_line(
    rng: np.random.Generator,
    n: int = 400,
    outlier_fraction: float = 0.1,
    slope: float = 3.0,
    intercept: float = 1.0,
) -> tuple[FloatArray, FloatArray, NDArray[np.bool_]]:
    """x: (n, 1) uniform on [0, 1]; y: (n,); the last entry marks the outliers."""
    x = rng.uniform(0, 1, size=(n, 1))
    y = slope * x[:, 0] + intercept + rng.normal(0, 0.1, n)
    out = np.zeros(n, dtype=bool)
    k = int(round(outlier_fraction * n))
    idx = rng.choice(n, size=k, replace=False)
    out[idx] = True
    # Gross errors concentrated at large x: they tilt a least-squares line upwards.
    x[idx, 0] = rng.uniform(0.8, 1.0, k)
    y[idx] = slope * x[idx, 0] + intercept + rng.uniform(8, 12, k)
    return x, y, out


def compare_losses(
    rng: np.random.Generator,
    n: int = 400,
    outlier_fraction: float = 0.1,
    huber_delta: float = 0.2,
    epochs: int = 20000,
) -> LossComparison:
    """Fit the same line with each regression loss by full-batch GD."""
    slope, intercept = 3.0, 1.0
    x, y, out = outlier_line(rng, n, outlier_fraction, slope, intercept)
    fits: dict[str, FitResult] = {}
    # MAE's sign subgradient oscillates with amplitude ~η around the optimum: small η.
    lrs: dict[LossName, float] = {"mse": 0.3, "mae": 0.1, "huber": 1.0}
    for loss, lr in lrs.items():
        cfg = TrainConfig(
            loss=loss,
            learning_rate=lr,
            epochs=epochs,
            huber_delta=huber_delta,
            early_stopping_patience=None,
        )
        fits[loss] = fit(x, y, cfg, rng)
    return LossComparison(x[:, 0], y, out, slope, intercept, fits)
