"""Concept drift: the model's error on labelled traffic against its validation error.

>>> concept_drift([1.0, 2.0], [1.5, 2.5], "regression", baseline_error=0.4, tolerance=0.2).drifted
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from mlplatform.errors import DriftError


@dataclass(frozen=True)
class ConceptDrift:
    """Error on labelled traffic against the validation error of the model."""

    metric: Literal["rmse", "error_rate"]
    error: float
    baseline_error: float
    ratio: float
    tolerance: float
    n_labelled: int
    drifted: bool


def prediction_error(
    labels: ArrayLike, predictions: ArrayLike, task: str, threshold: float = 0.5
) -> tuple[Literal["rmse", "error_rate"], float]:
    """labels (n,), predictions (n,) → (metric, error). Regression: RMSE = sqrt(mean((ŷ − y)²)).
    Classification: the share of rows where (P(class 1) ≥ threshold) disagrees with y = 1
    (that is 1 − accuracy)."""
    y, p = np.asarray(labels, np.float64), np.asarray(predictions, np.float64)
    if task == "classification":
        return "error_rate", float(np.mean((p >= threshold) != (y == 1)))
    return "rmse", float(np.sqrt(np.mean((p - y) ** 2)))


def concept_drift(
    labels: ArrayLike,
    predictions: ArrayLike,
    task: str,
    baseline_error: float,
    tolerance: float,
    threshold: float = 0.5,
) -> ConceptDrift:
    """Drift when the error on labelled rows exceeds baseline × (1 + tolerance); labels (n,),
    predictions (n,), rows with a missing label or prediction left out."""
    y, p = np.asarray(labels, np.float64), np.asarray(predictions, np.float64)
    if y.shape != p.shape:
        raise DriftError(f"{y.shape[0]} labels for {p.shape[0]} predictions")
    keep = np.isfinite(y) & np.isfinite(p)
    if not keep.any():
        raise DriftError("no labelled rows with a prediction")
    metric, error = prediction_error(y[keep], p[keep], task, threshold)
    ratio = error / baseline_error if baseline_error > 0 else (math.inf if error > 0 else 1.0)
    drifted = error > baseline_error * (1 + tolerance)
    return ConceptDrift(metric, error, baseline_error, ratio, tolerance, int(keep.sum()), drifted)
