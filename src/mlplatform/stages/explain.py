"""Stage 4, explain: LIME + Anchor + quality for rows of a :class:`LinearModel`.

The same functions serve the CLI, the pipeline's explain step and the demo. What is
explained is an :class:`~mlplatform.core.explain.ExplainTarget` built by
:func:`~mlplatform.core.training.explain_target`; the served explainer builds its own with
a ``predict_fn`` that calls the predictor and calls the core engines itself.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mlplatform.config import PlatformConfig
from mlplatform.core.explain import (
    InstanceExplanation,
    ModelExplanation,
    explain_instance,
    explain_model,
)
from mlplatform.core.explain.types import PredictFn
from mlplatform.core.model import LinearModel
from mlplatform.core.training import explain_target
from mlplatform.errors import DataError
from mlplatform.reporting.explain_report import write_model_report
from mlplatform.stages.io import read_splits


def explain_row_job(
    cfg: PlatformConfig,
    model: LinearModel,
    train: pd.DataFrame | None,
    row: pd.DataFrame,
    rng: np.random.Generator,
    predict_fn: PredictFn | None = None,
) -> InstanceExplanation:
    """LIME + Anchor + quality for one raw row (a one-row DataFrame)."""
    if len(row) != 1:
        raise DataError(f"explain one row at a time, got {len(row)}")
    x = model.encode(row)[0]
    return explain_instance(explain_target(cfg, model, train, predict_fn), x, cfg.explain, rng)


def explain_model_job(
    cfg: PlatformConfig,
    model: LinearModel,
    train: pd.DataFrame | None,
    rows: pd.DataFrame,
    rng: np.random.Generator,
    predict_fn: PredictFn | None = None,
) -> ModelExplanation:
    """Explain a sample of ``rows``; aggregate quality and the global view."""
    X = model.encode(rows)
    return explain_model(explain_target(cfg, model, train, predict_fn), X, cfg.explain, rng)


def explain_step(
    cfg: PlatformConfig, model_path: Path, split_in: dict[str, Path], report_out: Path
) -> dict[str, float]:
    """LIME + Anchor on a sample of test rows; quality metrics; the per-model HTML report."""
    model = LinearModel.load(model_path)
    splits = read_splits(split_in)
    result = explain_model_job(cfg, model, splits.train, splits.test, np.random.default_rng(0))
    write_model_report(result, report_out, f"{cfg.model_name}: explanations")
    return result.as_metrics()
