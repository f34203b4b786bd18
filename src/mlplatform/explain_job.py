"""Explanations of a :class:`LinearModel`: encode rows, pick a background, call the core engines.

The same functions serve the CLI, the pipeline's explain step and the served explainer
(there with a ``predict_fn`` that calls the predictor over HTTP).
"""

from __future__ import annotations

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
from mlplatform.errors import DataError

FloatArray = np.ndarray


def background(cfg: PlatformConfig, model: LinearModel, train: pd.DataFrame) -> FloatArray:
    """Encoded training rows (at most ``explain.background_rows``, a seeded sample)."""
    if len(train) == 0:
        raise DataError("the explainers need training rows as background; got none")
    n = min(len(train), cfg.explain.background_rows)
    sample = train.sample(n=n, random_state=cfg.data.seed) if n < len(train) else train
    return model.encode(sample)


def explain_row_job(
    cfg: PlatformConfig,
    model: LinearModel,
    train: pd.DataFrame,
    row: pd.DataFrame,
    rng: np.random.Generator,
    predict_fn: PredictFn | None = None,
) -> InstanceExplanation:
    """LIME + Anchor + quality for one raw row (a one-row DataFrame)."""
    if len(row) != 1:
        raise DataError(f"explain one row at a time, got {len(row)}")
    return explain_instance(
        predict_fn or model.predict_encoded,
        model.encode(row)[0],
        background(cfg, model, train),
        model.space,
        cfg.task,
        cfg.explain,
        rng,
        class_names=cfg.explain.class_names,
        threshold=model.threshold,
    )


def explain_model_job(
    cfg: PlatformConfig,
    model: LinearModel,
    train: pd.DataFrame,
    rows: pd.DataFrame,
    rng: np.random.Generator,
    predict_fn: PredictFn | None = None,
) -> ModelExplanation:
    """Explain a sample of ``rows``; aggregate quality and the global view."""
    return explain_model(
        predict_fn or model.predict_encoded,
        model.encode(rows),
        background(cfg, model, train),
        model.space,
        cfg.task,
        cfg.explain,
        rng,
        class_names=cfg.explain.class_names,
        threshold=model.threshold,
    )
