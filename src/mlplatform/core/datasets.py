"""Datasets: synthetic house prices and credit applications, and scikit-learn's diabetes data.

Every generator is deterministic given its ``numpy.random.Generator`` and returns a
DataFrame with an entity id column, an ``event_timestamp`` column (UTC) and the
target, so the same frame can feed Feast, DVC and the trainer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlplatform.errors import DataError

DISTRICTS: tuple[str, ...] = ("d1", "d3", "binh_thanh", "go_vap", "thu_duc")
#: Price premium of each district, VND (the ground truth of the generator).
DISTRICT_PREMIUM_VND: dict[str, float] = {
    "d1": 2.0e9,
    "d3": 1.2e9,
    "binh_thanh": 0.6e9,
    "go_vap": 0.0,
    "thu_duc": -0.2e9,
}
#: True linear effects of the house generator, VND per unit.
HOUSE_COEF_VND: dict[str, float] = {
    "area_m2": 60e6,
    "bedrooms": 150e6,
    "age_years": -20e6,
    "distance_km": -70e6,
}
HOUSE_BASE_VND = 1.0e9


@dataclass(frozen=True)
class Splits:
    """Train/validation/test frames (disjoint rows)."""

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame


def _timestamps(rng: np.random.Generator, n: int, start: str, days: int) -> pd.Series:
    base = pd.Timestamp(start, tz="UTC")
    seconds = np.sort(rng.integers(0, days * 86_400, size=n))
    return pd.Series(base + pd.to_timedelta(seconds, unit="s"), name="event_timestamp")


def _noise(rng: np.random.Generator, signal: np.ndarray, noise: float) -> np.ndarray:
    return rng.normal(0.0, noise * float(np.std(signal)) + 1e-12, size=signal.shape)


def house_price_truth(df: pd.DataFrame, shift: float = 0.0) -> np.ndarray:
    """Noise-free price (VND) of each house; ``shift`` raises prices per m² by 30 % per unit."""
    price = np.full(len(df), HOUSE_BASE_VND)
    for name, coef in HOUSE_COEF_VND.items():
        scale = 1.0 + 0.3 * shift if name == "area_m2" else 1.0
        price += coef * scale * df[name].to_numpy(dtype=float)
    price += df["district"].map(DISTRICT_PREMIUM_VND).to_numpy(dtype=float)
    return price


def generate_house(
    rng: np.random.Generator,
    rows: int,
    *,
    noise: float = 0.1,
    outlier_fraction: float = 0.0,
    shift: float = 0.0,
    start_date: str = "2026-01-01",
    days: int = 180,
) -> pd.DataFrame:
    """Synthetic houses: area, bedrooms, age, distance, district → ``price_vnd``.

    ``shift`` > 0 moves the world: bigger, newer homes farther out, a different
    district mix, and a higher price per m² (covariate and concept drift together).
    Outliers multiply the price by 3-6 (data-entry errors).
    """
    area = np.clip(rng.lognormal(np.log(75 * (1 + 0.4 * shift)), 0.45, rows), 20, 400)
    bedrooms = np.clip(np.round(area / 35 + rng.normal(0, 0.7, rows)), 1, 6)
    age = np.clip(rng.gamma(2.0, 8.0 / (1 + shift), rows), 0, 60).round(1)
    distance = np.clip(rng.gamma(2.5, 3.0 * (1 + 0.5 * shift), rows), 0.3, 40).round(2)
    weights = np.array([0.15, 0.2, 0.25, 0.2, 0.2])
    if shift > 0:
        weights = weights + shift * np.array([0.0, 0.0, 0.0, 0.1, 0.3])
    district = rng.choice(DISTRICTS, size=rows, p=weights / weights.sum())
    df = pd.DataFrame(
        {
            "area_m2": area.round(1),
            "bedrooms": bedrooms,
            "age_years": age,
            "distance_km": distance,
            "district": district,
        }
    )
    truth = house_price_truth(df, shift)
    price = truth + _noise(rng, truth, noise)
    n_out = int(round(outlier_fraction * rows))
    if n_out:
        idx = rng.choice(rows, size=n_out, replace=False)
        price[idx] *= rng.uniform(3, 6, n_out)
    df["price_vnd"] = np.maximum(price, 1e8).round(-5)
    df.insert(0, "house_id", np.arange(1, rows + 1, dtype=np.int64))
    df.insert(1, "event_timestamp", _timestamps(rng, rows, start_date, days))
    return df


def credit_logit(df: pd.DataFrame) -> np.ndarray:
    """Ground-truth log-odds of approval."""
    income_m = df["income_vnd"].to_numpy(dtype=float) / 1e6
    logit: np.ndarray = (
        -1.0
        + 0.12 * (income_m - 15.0)
        - 6.0 * (df["debt_ratio"].to_numpy(dtype=float) - 0.35)
        - 0.9 * df["late_payments"].to_numpy(dtype=float)
        + 0.15 * df["years_employed"].to_numpy(dtype=float)
        + 0.02 * (df["age"].to_numpy(dtype=float) - 35.0)
    )
    return logit


def generate_credit(
    rng: np.random.Generator,
    rows: int,
    *,
    noise: float = 0.1,
    outlier_fraction: float = 0.0,
    shift: float = 0.0,
    start_date: str = "2026-01-01",
    days: int = 180,
) -> pd.DataFrame:
    """Synthetic credit applications → ``approved`` (1 approve, 0 reject).

    ``outlier_fraction`` flips that share of labels; ``shift`` lowers incomes and
    raises debt (an economic downturn).
    """
    age = rng.integers(21, 71, rows).astype(float)
    income = np.clip(rng.lognormal(np.log(15e6 / (1 + 0.3 * shift)), 0.5, rows), 3e6, 300e6)
    debt = np.clip(rng.beta(2.0, 4.0, rows) + 0.1 * shift, 0, 1.5).round(3)
    late = rng.poisson(0.8 * (1 + shift), rows).astype(float)
    employed = np.clip(rng.exponential(5.0, rows), 0, age - 18).round(1)
    df = pd.DataFrame(
        {
            "age": age,
            "income_vnd": income.round(-4),
            "debt_ratio": debt,
            "late_payments": late,
            "years_employed": employed,
        }
    )
    logit = credit_logit(df) + rng.normal(0, noise * 2.0, rows)
    approved = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    n_flip = int(round(outlier_fraction * rows))
    if n_flip:
        idx = rng.choice(rows, size=n_flip, replace=False)
        approved[idx] = 1 - approved[idx]
    df["approved"] = approved
    df.insert(0, "applicant_id", np.arange(1, rows + 1, dtype=np.int64))
    df.insert(1, "event_timestamp", _timestamps(rng, rows, start_date, days))
    return df


def load_diabetes_frame(
    rng: np.random.Generator, *, start_date: str = "2026-01-01", days: int = 180
) -> pd.DataFrame:
    """scikit-learn's bundled diabetes data (442 rows, no download) with ids and timestamps."""
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes(as_frame=True, scaled=False)
    df = bunch.frame.rename(columns={"target": "progression"})
    df.insert(0, "patient_id", np.arange(1, len(df) + 1, dtype=np.int64))
    df.insert(1, "event_timestamp", _timestamps(rng, len(df), start_date, days))
    return df.reset_index(drop=True)


def split(
    df: pd.DataFrame,
    rng: np.random.Generator,
    val_fraction: float,
    test_fraction: float,
    stratify: str | None = None,
) -> Splits:
    """Random disjoint split; with ``stratify`` each class keeps its share in every part."""
    if len(df) < 10:
        raise DataError(f"need at least 10 rows to split, got {len(df)}")
    groups = (
        [df.index.to_numpy()]
        if stratify is None
        else [g.index.to_numpy() for _, g in df.groupby(stratify, sort=True)]
    )
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for idx in groups:
        idx = rng.permutation(idx)
        n_val = int(round(val_fraction * len(idx)))
        n_test = int(round(test_fraction * len(idx)))
        parts["val"].append(idx[:n_val])
        parts["test"].append(idx[n_val : n_val + n_test])
        parts["train"].append(idx[n_val + n_test :])
    frames = {
        k: df.loc[np.sort(np.concatenate(v))].reset_index(drop=True) for k, v in parts.items()
    }
    return Splits(frames["train"], frames["val"], frames["test"])
