from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from mlplatform.core.metrics import classification_metrics, regression_metrics


def test_regression_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(0)
    y, p = rng.normal(size=100), rng.normal(size=100)
    m = regression_metrics(y, p)
    assert m["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, p)))
    assert m["mae"] == pytest.approx(skm.mean_absolute_error(y, p))
    assert m["r2"] == pytest.approx(skm.r2_score(y, p))


def test_classification_metrics_match_sklearn_with_ties() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random(300) < 0.4).astype(float)
    proba = np.round(rng.random(300), 1)  # many ties
    m = classification_metrics(y, proba)
    pred = proba >= 0.5
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba))
