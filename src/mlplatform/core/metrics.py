"""Evaluation metrics, computed with numpy (checked against scikit-learn in the tests)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.stats import rankdata

FloatArray = NDArray[np.float64]


def regression_metrics(y: FloatArray, y_hat: FloatArray) -> dict[str, float]:
    """RMSE, MAE and R² = 1 − SS_res / SS_tot."""
    r = y_hat - y
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return {
        "rmse": float(np.sqrt(np.mean(r * r))),
        "mae": float(np.mean(np.abs(r))),
        "r2": 1.0 - float((r * r).sum()) / ss_tot if ss_tot > 0 else 0.0,
    }


def roc_auc(y: FloatArray, score: FloatArray) -> float:
    """Area under the ROC curve by the rank-sum (Mann-Whitney U) formula, ties averaged."""
    pos = y == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def classification_metrics(
    y: FloatArray, proba: FloatArray, threshold: float = 0.5
) -> dict[str, float]:
    """Accuracy, precision, recall, F1 (positive class 1) and ROC AUC."""
    pred = proba >= threshold
    pos = y == 1
    tp = float((pred & pos).sum())
    fp = float((pred & ~pos).sum())
    fn = float((~pred & pos).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "accuracy": float((pred == pos).mean()),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "roc_auc": roc_auc(y, proba),
    }
