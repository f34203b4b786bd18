"""From a config and data to a trained, evaluated :class:`LinearModel`.

Order matters for leakage: split first, then fit the scaler on the training rows
only, then transform every split with that scaler.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from mlplatform.config import DataConfig, PlatformConfig
from mlplatform.core import datasets
from mlplatform.core.explain.reference import entity_noun
from mlplatform.core.explain.target import ExplainTarget
from mlplatform.core.explain.types import PredictFn
from mlplatform.core.gd import EpochCallback, FitResult, fit
from mlplatform.core.metrics import classification_metrics, regression_metrics
from mlplatform.core.model import LinearModel
from mlplatform.core.scaling import FeatureScaler, TargetScaler, fit_scaler
from mlplatform.errors import DataError

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class TrainingOutcome:
    model: LinearModel
    fit: FitResult
    metrics: dict[str, dict[str, float]]  # split name → metric → value


def generate(cfg: DataConfig) -> pd.DataFrame:
    """The dataset named by ``cfg.dataset``, deterministic in ``cfg.seed``."""
    rng = np.random.default_rng(cfg.seed)
    kw = {"start_date": cfg.start_date, "days": cfg.days}
    if cfg.dataset == "diabetes":
        return datasets.load_diabetes_frame(rng, **kw)  # type: ignore[arg-type]
    gen = datasets.generate_house if cfg.dataset == "house" else datasets.generate_credit
    return gen(
        rng,
        cfg.rows,
        noise=cfg.noise,
        outlier_fraction=cfg.outlier_fraction,
        shift=cfg.shift,
        **kw,  # type: ignore[arg-type]
    )


def split_frame(cfg: PlatformConfig, df: pd.DataFrame) -> datasets.Splits:
    """Train/val/test split (stratified on the label for classification)."""
    missing = [c for c in (*cfg.feature_names, cfg.target) if c not in df.columns]
    if missing:
        raise DataError(f"data lacks columns {missing} named in the config")
    rng = np.random.default_rng(cfg.data.seed + 1)
    strat = cfg.target if cfg.task == "classification" else None
    return datasets.split(df, rng, cfg.data.val_fraction, cfg.data.test_fraction, strat)


def target_vector(cfg: PlatformConfig, df: pd.DataFrame) -> FloatArray:
    y: FloatArray = pd.to_numeric(df[cfg.target], errors="coerce").to_numpy(dtype=np.float64)
    if not np.isfinite(y).all():
        raise DataError(f"target {cfg.target!r} has missing or non-numeric values")
    return y


def fit_feature_scaler(cfg: PlatformConfig, train: pd.DataFrame) -> FeatureScaler:
    return fit_scaler(
        train,
        cfg.numeric_features,
        cfg.categorical_features,
        cfg.normalize.method,
        cfg.normalize.out_of_range,
        order=cfg.feature_names,
    )


Normalization = tuple[FeatureScaler, TargetScaler]


def fit_normalization(cfg: PlatformConfig, train: pd.DataFrame) -> Normalization:
    """Feature scaler and (regression) target scaler, from the training rows only."""
    y = target_vector(cfg, train)
    regression = cfg.task == "regression"
    tscale = TargetScaler.fit(y) if regression and cfg.normalize.scale_target else TargetScaler()
    return fit_feature_scaler(cfg, train), tscale


def evaluate(model: LinearModel, df: pd.DataFrame, y: FloatArray) -> dict[str, float]:
    pred = model.predict(df)
    if model.task == "classification":
        return classification_metrics(y, pred, model.threshold)
    return regression_metrics(y, pred)


def background_sample(
    cfg: PlatformConfig, scaler: FeatureScaler, train: pd.DataFrame
) -> FloatArray:
    """Encoded training rows (at most ``explain.background_rows``, seeded) for the explainers."""
    n = min(len(train), cfg.explain.background_rows)
    rows = train.sample(n=n, random_state=cfg.data.seed) if n < len(train) else train
    return scaler.encode(rows)


def explain_background(
    cfg: PlatformConfig, model: LinearModel, train: pd.DataFrame | None = None
) -> FloatArray:
    """Encoded training rows for the explainers: a seeded sample of ``train``, else the
    model's stored sample (``model.background``)."""
    if train is not None and len(train):
        return background_sample(cfg, model.scaler, train)
    if model.background is not None and len(model.background):
        return model.background
    raise DataError("the explainers need training rows as background; got none")


def explain_target(
    cfg: PlatformConfig,
    model: LinearModel,
    train: pd.DataFrame | None = None,
    predict_fn: PredictFn | None = None,
) -> ExplainTarget:
    """``model`` as the explainers see it: ``predict_fn`` (default ``model.predict_encoded``;
    the served explainer passes one that calls the predictor), :func:`explain_background`,
    the model's space and threshold, the config's task, class names, entity and reference
    row (``explain.reference`` given as a raw row, encoded here)."""
    given = cfg.explain.reference
    row = None if isinstance(given, str) else model.encode(model.frame([list(given)]))[0]
    return ExplainTarget(
        predict_fn or model.predict_encoded,
        explain_background(cfg, model, train),
        model.space,
        cfg.task,
        cfg.explain.class_names,
        model.threshold,
        entity_noun(cfg.entity),
        row,
    )


def train_model(
    cfg: PlatformConfig,
    splits: datasets.Splits,
    on_epoch: EpochCallback | None = None,
    metadata: dict[str, str] | None = None,
    norm: Normalization | None = None,
) -> TrainingOutcome:
    """Fit GD weights (and the normalization, on train rows only, unless given); evaluate."""
    scaler, tscale = norm or fit_normalization(cfg, splits.train)
    y_tr, y_va = target_vector(cfg, splits.train), target_vector(cfg, splits.val)
    result = fit(
        scaler.transform(splits.train),
        tscale.forward(y_tr),
        cfg.train,
        np.random.default_rng(cfg.train.seed),
        X_val=scaler.transform(splits.val),
        y_val=tscale.forward(y_va),
        on_epoch=on_epoch,
    )
    model = LinearModel(
        name=cfg.model_name,
        task=cfg.task,
        scaler=scaler,
        target=tscale,
        weights=result.weights,
        bias=result.bias,
        loss=cfg.train.loss,
        threshold=cfg.train.threshold,
        units={f.name: f.unit for f in cfg.features if f.unit},
        metadata=dict(metadata or {}),
        background=background_sample(cfg, scaler, splits.train),
    )
    metrics = {
        name: evaluate(model, part, target_vector(cfg, part))
        for name, part in (("train", splits.train), ("val", splits.val), ("test", splits.test))
    }
    return TrainingOutcome(model, result, metrics)
