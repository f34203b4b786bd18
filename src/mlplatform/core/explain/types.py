"""Shared types and input checks of the explanation engines.

Every engine explains a black box ``predict_fn(X: (n, d)) -> (n,)`` in the encoded
space of :class:`~mlplatform.core.space.FeatureSpace`: the prediction for regression,
P(class 1) for classification.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from mlplatform.config import ExplainConfig
from mlplatform.core.space import FeatureSpace
from mlplatform.errors import ExplanationError

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]
Task = Literal["regression", "classification"]
PredictFn = Callable[[FloatArray], FloatArray]


def call_model(predict_fn: PredictFn, Z: FloatArray) -> FloatArray:
    """``predict_fn(Z)`` checked to be a finite (n,) vector for Z: (n, d)."""
    y = np.asarray(predict_fn(Z), dtype=np.float64).reshape(-1)
    if y.shape != (Z.shape[0],):
        raise ExplanationError(
            f"predict_fn returned {y.size} values for {Z.shape[0]} rows; expected shape (n,)"
        )
    if not np.all(np.isfinite(y)):
        raise ExplanationError("predict_fn returned NaN or infinite predictions")
    return y


def check_background(background: FloatArray, space: FeatureSpace) -> FloatArray:
    """The background rows (n_bg, d) validated, or ExplanationError if there are none."""
    B = np.asarray(background, dtype=np.float64)
    if B.size == 0:
        raise ExplanationError(
            "background is empty: pass encoded training rows to sample neighbourhoods from"
        )
    return space.check(B, "background")


def check_rows(rows: FloatArray, space: FeatureSpace, cfg: ExplainConfig) -> FloatArray:
    """Rows to explain (n, d) (a single (d,) row is accepted) validated against ``space``."""
    X = space.check(np.asarray(rows, dtype=np.float64), "rows to explain")
    if cfg.num_features > space.width:
        raise ExplanationError(
            f"num_features={cfg.num_features} exceeds the {space.width} features of the model"
        )
    return X


def check_row(x: FloatArray, space: FeatureSpace) -> FloatArray:
    """One row to explain, (d,) or (1, d), validated and returned as (d,)."""
    X = space.check(np.asarray(x, dtype=np.float64), "row to explain")
    if X.shape[0] != 1:
        raise ExplanationError(
            f"expected one row to explain, got {X.shape[0]}; "
            "use lime_explain_batch or explain_model for many rows"
        )
    return np.asarray(X[0], dtype=np.float64)


def kernel_width(cfg: ExplainConfig, d: int) -> float:
    """σ of π_x(z) = exp(-D²/σ²): ``cfg.kernel_width`` or 0.75·sqrt(d), as in lime."""
    return float(cfg.kernel_width) if cfg.kernel_width is not None else 0.75 * float(np.sqrt(d))
