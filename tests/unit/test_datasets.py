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


#: The house generator's documented ground truth (README "Data"), written out independently of
#: core/datasets.py: VND per unit of each numeric feature, premium per district (go_vap = 0).
HOUSE_SLOPES = {"area_m2": 60e6, "bedrooms": 150e6, "age_years": -20e6, "distance_km": -70e6}
HOUSE_PREMIUMS = {"d1": 2.0e9, "d3": 1.2e9, "binh_thanh": 0.6e9, "thu_duc": -0.2e9}
HOUSE_BASE = 1.0e9


def _house_fit(df: pd.DataFrame) -> tuple[dict[str, float], np.ndarray]:
    """Least-squares coefficients of price on the features (go_vap the reference district)
    and the residuals: an oracle that never calls the generator's own price function."""
    cols = [df[n].to_numpy(float) for n in HOUSE_SLOPES]
    cols += [(df["district"] == d).to_numpy(float) for d in HOUSE_PREMIUMS]
    X = np.column_stack([np.ones(len(df)), *cols])
    y = df["price_vnd"].to_numpy(float)
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    names = ["(base)", *HOUSE_SLOPES, *HOUSE_PREMIUMS]
    return dict(zip(names, beta.tolist(), strict=True)), y - X @ beta


def test_house_price_follows_the_documented_linear_function() -> None:
    df = datasets.generate_house(np.random.default_rng(0), 2000, noise=0.0)
    cheap = df["price_vnd"] <= 1e8  # floored at 100 M VND: off the line
    assert cheap.mean() < 0.05
    coef, resid = _house_fit(df[~cheap])
    want = {"(base)": HOUSE_BASE, **HOUSE_SLOPES, **HOUSE_PREMIUMS}
    for name, value in want.items():
        assert coef[name] == pytest.approx(value, abs=2e5), name
    assert np.abs(resid).max() <= 5e4 + 1  # only the rounding to 100,000 VND is left


def test_house_noise_and_shift_match_the_documentation() -> None:
    """noise = 0.1 adds N(0, 0.1 · sd(price)); shift = 1 makes each m² 30 % dearer."""
    df = datasets.generate_house(np.random.default_rng(5), 4000, noise=0.1)
    coef, resid = _house_fit(df)
    assert coef["area_m2"] == pytest.approx(60e6, rel=0.05)
    truth_sd = np.std(df["price_vnd"].to_numpy(float) - resid)  # the fitted signal's spread
    assert np.std(resid) == pytest.approx(0.1 * truth_sd, rel=0.1)
    shifted = datasets.generate_house(np.random.default_rng(6), 4000, noise=0.0, shift=1.0)
    coef = _house_fit(shifted[shifted["price_vnd"] > 1e8])[0]
    assert coef["area_m2"] == pytest.approx(1.3 * 60e6, rel=0.01)
    assert coef["bedrooms"] == pytest.approx(150e6, rel=0.01)


def test_outliers_and_shift() -> None:
    rng = np.random.default_rng
    base = datasets.generate_house(rng(1), 4000)
    dirty = datasets.generate_house(rng(1), 4000, outlier_fraction=0.05)
    assert (dirty["price_vnd"] > 2.5 * base["price_vnd"]).mean() == pytest.approx(0.05, abs=0.01)
    shifted = datasets.generate_house(rng(2), 4000, shift=1.0)
    assert shifted["area_m2"].mean() > 1.25 * base["area_m2"].mean()
    assert shifted["distance_km"].mean() > 1.3 * base["distance_km"].mean()


#: The credit generator's log-odds of approval, written out: per million VND of monthly income,
#: per unit of debt ratio, per late payment, per year employed, per year of age.
CREDIT_LOGIT = {
    "(intercept)": -1.0 - 0.12 * 15.0 + 6.0 * 0.35 - 0.02 * 35.0,
    "income_m": 0.12,
    "debt_ratio": -6.0,
    "late_payments": -0.9,
    "years_employed": 0.15,
    "age": 0.02,
}


def _logistic_fit(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-likelihood logistic regression by Newton's method: (β, standard errors)."""
    beta = np.zeros(X.shape[1])
    for _ in range(25):
        p = 1.0 / (1.0 + np.exp(-X @ beta))
        hessian = X.T @ (X * (p * (1 - p))[:, None])
        beta += np.linalg.solve(hessian, X.T @ (y - p))
    return beta, np.sqrt(np.diag(np.linalg.inv(hessian)))


def test_credit_labels_follow_the_documented_logit() -> None:
    df = datasets.generate_credit(np.random.default_rng(0), 20_000, noise=0.0)
    assert set(df["approved"]) == {0, 1}
    X = np.column_stack(
        [
            np.ones(len(df)),
            df["income_vnd"] / 1e6,
            *(df[c] for c in ("debt_ratio", "late_payments", "years_employed", "age")),
        ]
    ).astype(float)
    beta, se = _logistic_fit(X, df["approved"].to_numpy(float))
    for (name, want), got, err in zip(CREDIT_LOGIT.items(), beta, se, strict=True):
        assert abs(got - want) < 4 * err, (name, got, want, err)


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
