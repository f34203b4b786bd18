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
from mlplatform.core.training import background_sample
from mlplatform.errors import DataError

FloatArray = np.ndarray


def background(
    cfg: PlatformConfig, model: LinearModel, train: pd.DataFrame | None = None
) -> FloatArray:
    """Encoded training rows: a seeded sample of ``train``, else the model's stored sample."""
    if train is not None and len(train):
        return background_sample(cfg, model.scaler, train)
    if model.background is not None and len(model.background):
        return model.background
    raise DataError("the explainers need training rows as background; got none")


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
