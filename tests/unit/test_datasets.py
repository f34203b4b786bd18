from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlplatform.config import load_config
from mlplatform.core import datasets
from mlplatform.core.training import generate, split_frame


def test_generators_are_deterministic_and_keyed() -> None:
    a = datasets.generate_house(np.random.default_rng(3), 200)
    b = datasets.generate_house(np.random.default_rng(3), 200)
    pd.testing.assert_frame_equal(a, b)
    assert a["house_id"].is_unique
    assert str(a["event_timestamp"].dt.tz) == "UTC"
    assert set(a["district"]) <= set(datasets.DISTRICTS)


def test_house_price_follows_the_known_function() -> None:
    df = datasets.generate_house(np.random.default_rng(0), 2000, noise=0.0)
    np.testing.assert_allclose(df["price_vnd"], datasets.house_price_truth(df).clip(1e8), atol=5e4)


def test_outliers_and_shift() -> None:
    rng = np.random.default_rng
    base = datasets.generate_house(rng(1), 4000)
    dirty = datasets.generate_house(rng(1), 4000, outlier_fraction=0.05)
    assert (dirty["price_vnd"] > 2.5 * base["price_vnd"]).mean() == pytest.approx(0.05, abs=0.01)
    shifted = datasets.generate_house(rng(2), 4000, shift=1.0)
    assert shifted["area_m2"].mean() > 1.25 * base["area_m2"].mean()
    assert shifted["distance_km"].mean() > 1.3 * base["distance_km"].mean()


def test_credit_labels_follow_the_logit() -> None:
    df = datasets.generate_credit(np.random.default_rng(0), 5000)
    high = datasets.credit_logit(df) > 1
    assert df.loc[high, "approved"].mean() > 0.6
    assert df.loc[~high, "approved"].mean() < 0.5
    assert set(df["approved"]) == {0, 1}


def test_classification_split_is_stratified() -> None:
    cfg = load_config("configs/credit-risk.yaml", env={})
    s = split_frame(cfg, generate(cfg.data))
    rates = [p["approved"].mean() for p in (s.train, s.val, s.test)]
    assert max(rates) - min(rates) < 0.01


def test_diabetes_is_the_bundled_real_dataset() -> None:
    cfg = load_config("configs/diabetes.yaml", env={})
    df = generate(cfg.data)
    assert len(df) == 442
    assert {"bmi", "bp", "progression", "patient_id", "event_timestamp"} <= set(df.columns)
