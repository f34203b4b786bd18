"""Drift statistics equal scipy's; drift is found on a shifted world and rarely on the same one."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import mlplatform.core.drift
from mlplatform.config import MonitorConfig, load_config
from mlplatform.core.drift import (
    category_counts,
    chi2_contingency_test,
    chisquare_test,
    concept_drift,
    detect_drift,
    ks_pvalues,
    ks_statistics,
    ks_test,
    psi,
    system_health,
)
from mlplatform.core.training import generate, split_frame
from mlplatform.errors import DriftError

CFG = load_config("configs/house-price.yaml")
EXACT = MonitorConfig(ks_fast_tail=False)  # scipy's KS p-value everywhere, no fast tail
COLUMNS = {"numeric": CFG.numeric_features, "categorical": CFG.categorical_features}


def _ks_2samp(ref: np.ndarray, cur: np.ndarray, method: str) -> tuple[float, float]:
    with warnings.catch_warnings():  # n = m = 1 asymp divides by 0; exact may fall back
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.ks_2samp(ref, cur, method=method)
    return float(res.statistic), float(res.pvalue)


def _scipy(ref: np.ndarray, cur: np.ndarray, method: str = "auto") -> tuple[np.ndarray, ...]:
    res = [_ks_2samp(ref[:, j], cur[:, j], method) for j in range(ref.shape[1])]
    return np.array([r[0] for r in res]), np.array([r[1] for r in res])


@pytest.mark.parametrize(
    "name",
    ["", *(f".{m.name}" for m in pkgutil.iter_modules(mlplatform.core.drift.__path__))],
)
def test_module_examples(name: str) -> None:
    module = importlib.import_module(f"mlplatform.core.drift{name}")
    assert doctest.testmod(module).failed == 0


# -- KS -------------------------------------------------------------------------------------------
@settings(max_examples=150, deadline=None)
@given(
    ref=st.lists(st.integers(-4, 4), min_size=1, max_size=60),
    cur=st.lists(st.integers(-4, 4), min_size=1, max_size=60),
)
def test_ks_statistic_equals_scipy_with_heavy_ties(ref: list[int], cur: list[int]) -> None:
    r, c = np.array(ref, float)[:, None] / 3, np.array(cur, float)[:, None] / 3
    assert ks_statistics(r, c)[0] == _ks_2samp(r[:, 0], c[:, 0], "asymp")[0]
    d, p = ks_test(r, c, "auto")  # exact: D reported as h / lcm(n, m), like scipy
    assert (d[0], p[0]) == _ks_2samp(r[:, 0], c[:, 0], "auto")


@pytest.mark.parametrize("decimals", [0, 1, 6])
@pytest.mark.parametrize(("n", "m"), [(1, 1), (1, 50), (200, 200), (333, 120), (2000, 64)])
def test_ks_statistic_and_pvalues_equal_scipy(n: int, m: int, decimals: int) -> None:
    rng = np.random.default_rng(n * 1000 + m + decimals)
    ref = rng.normal(size=(n, 4)).round(decimals)
    cur = rng.normal([0.0, 0.2, 1.0, 0.0], [1, 1, 1, 3], size=(m, 4)).round(decimals)
    for method in ("auto", "asymp"):
        d, p = ks_test(ref, cur, method)  # type: ignore[arg-type]
        d_ref, p_ref = _scipy(ref, cur, method)
        np.testing.assert_allclose(d, d_ref, rtol=0, atol=1e-12)
        np.testing.assert_allclose(p, p_ref, rtol=1e-12, atol=1e-300)  # NaN == NaN (n = m = 1)


def test_auto_switches_to_asymp_above_ten_thousand_rows() -> None:
    rng = np.random.default_rng(5)
    ref, cur = rng.normal(size=(10_001, 2)), rng.normal(0.05, 1, size=(400, 2))
    d, p = ks_test(ref, cur, "auto")
    d_ref, p_ref = _scipy(ref, cur, "auto")
    np.testing.assert_array_equal(d, d_ref)
    np.testing.assert_allclose(p, p_ref, rtol=1e-12)
    assert ks_pvalues(d, 10_001, 400, "asymp")[1] == pytest.approx(p, rel=1e-12)


def test_identical_samples_do_not_drift() -> None:
    x = np.random.default_rng(0).normal(size=(300, 3))
    d, p = ks_test(x, x)
    assert (d == 0).all() and (p == 1).all()


@pytest.mark.parametrize(
    ("ref", "cur", "match"),
    [
        (np.zeros((0, 2)), np.zeros((3, 2)), "non-empty"),
        (np.zeros((3, 2)), np.zeros((3, 3)), "columns"),
        (np.array([[np.nan], [1.0]]), np.zeros((3, 1)), "NaN"),
        (np.zeros(5), np.zeros(5), "non-empty"),
    ],
)
def test_ks_rejects_bad_input(ref: np.ndarray, cur: np.ndarray, match: str) -> None:
    with pytest.raises(DriftError, match=match):
        ks_statistics(ref, cur)


# -- categorical ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("ref", "cur"),
    [([50, 30, 20], [10, 30, 20]), ([5, 7], [9, 1]), ([400, 0, 3, 1], [20, 5, 0, 1]), ([7], [3])],
)
def test_chi2_equals_scipy_contingency_without_correction(ref: list[int], cur: list[int]) -> None:
    statistic, p = chi2_contingency_test(ref, cur)
    expected = stats.chi2_contingency(np.array([ref, cur]), correction=False)
    assert statistic == pytest.approx(expected.statistic, rel=1e-12, abs=1e-12)
    assert p == pytest.approx(expected.pvalue, rel=1e-12)


def test_chi2_needs_both_samples() -> None:
    with pytest.raises(DriftError, match="non-empty"):
        chi2_contingency_test([3, 4], [0, 0])


def test_chisquare_is_evidentlys_goodness_of_fit() -> None:
    ref, cur = np.array([500.0, 300, 200]), np.array([40.0, 35, 25])
    statistic, p = chisquare_test(ref, cur)
    expected = stats.chisquare(cur, ref * cur.sum() / ref.sum())
    assert (statistic, p) == pytest.approx((expected.statistic, expected.pvalue), rel=1e-12)
    assert chisquare_test([5, 0], [3, 2]) == (np.inf, 0.0)  # a category new to the reference


def test_psi_formula_and_zero_shares() -> None:
    ref, cur = np.array([60.0, 40.0]), np.array([30.0, 70.0])
    r, c = ref / ref.sum(), cur / cur.sum()
    assert psi(ref, cur) == pytest.approx(float(np.sum((r - c) * np.log(r / c))))
    assert psi([5, 5], [5, 5]) == 0.0
    # an empty share becomes 1e-4 (Evidently): finite, large
    assert 0.5 < psi([50, 50, 0], [40, 40, 20]) < np.inf


def test_category_counts_union_sorted() -> None:
    cats, rc, cc = category_counts(pd.Series(["b", "a", "b", None]), pd.Series(["c", "a"]))
    assert cats == ["a", "b", "c"]
    assert rc.tolist() == [1, 2, 0] and cc.tolist() == [1, 0, 1]


# -- detect_drift ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return split_frame(CFG, generate(CFG.data)).train


def _sample(shift: float, seed: int, rows: int = 500) -> pd.DataFrame:
    return generate(CFG.data.model_copy(update={"shift": shift, "seed": seed, "rows": rows}))


@pytest.mark.parametrize("cat_method", ["chi2", "chisquare", "psi"])
def test_drift_found_on_shifted_world(reference: pd.DataFrame, cat_method: str) -> None:
    settings = MonitorConfig(ks_fast_tail=False, cat_method=cat_method)  # type: ignore[arg-type]
    report = detect_drift(reference, _sample(shift=1.0, seed=1), settings, **COLUMNS)
    assert report.dataset_drift and report.share == 1.0
    assert set(report.drifted) == set(CFG.feature_names)


def test_false_positive_rate_bounded_over_seeds(reference: pd.DataFrame) -> None:
    reports = [
        detect_drift(reference, _sample(0.0, seed), EXACT, **COLUMNS) for seed in range(100, 150)
    ]
    dataset_fpr = np.mean([r.dataset_drift for r in reports])
    column_fpr = np.mean([f.drifted for r in reports for f in r.features])
    assert dataset_fpr <= 0.10
    assert column_fpr <= 0.10  # each test is at the 5 % level (KS on ties is conservative)


def test_moderate_shift_is_detected_every_time(reference: pd.DataFrame) -> None:
    reports = (detect_drift(reference, _sample(0.5, s), EXACT, **COLUMNS) for s in range(10))
    assert all(r.dataset_drift for r in reports)


def test_report_matches_scipy_per_column(reference: pd.DataFrame) -> None:
    cur = _sample(0.3, 7, rows=400)
    report = detect_drift(reference, cur, EXACT, **COLUMNS)
    for f in report.features[:4]:
        res = stats.ks_2samp(reference[f.name], cur[f.name])
        assert (f.statistic, f.p_value) == (res.statistic, res.pvalue)
        assert f.drifted == (res.pvalue <= 0.05)
    table = pd.crosstab(
        np.r_[np.zeros(len(reference)), np.ones(len(cur))],
        np.r_[reference["district"], cur["district"]],
    )
    district = report.features[4]
    assert district.p_value == pytest.approx(stats.chi2_contingency(table, False).pvalue, 1e-12)


def test_dataset_drift_at_drift_share() -> None:
    rng = np.random.default_rng(0)
    ref = pd.DataFrame(rng.normal(size=(300, 4)), columns=list("abcd"))
    cur = pd.DataFrame(rng.normal([3, 3, 0, 0], 1, size=(300, 4)), columns=list("abcd"))
    half = MonitorConfig(ks_fast_tail=False, drift_share=0.5)
    report = detect_drift(ref, cur, half, numeric=("a", "b", "c", "d"))
    assert report.drifted == ("a", "b") and report.share == 0.5 and report.dataset_drift
    strict = MonitorConfig(ks_fast_tail=False, drift_share=0.75)
    strict_report = detect_drift(ref, cur, strict, numeric=("a", "b", "c", "d"))
    assert not strict_report.dataset_drift
    assert report.to_dict()["drifted"] == ["a", "b"]


def test_missing_values_dropped_per_column() -> None:
    rng = np.random.default_rng(1)
    ref = pd.DataFrame({"x": rng.normal(size=200), "y": rng.normal(size=200)})
    cur = pd.DataFrame({"x": rng.normal(size=150), "y": rng.normal(size=150)})
    cur.loc[::10, "y"] = np.nan
    report = detect_drift(ref, cur, EXACT, numeric=("x", "y"))
    res = stats.ks_2samp(ref["y"], cur["y"].dropna())
    assert (report.features[1].statistic, report.features[1].p_value) == (res[0], res[1])
    assert report.features[1].n_current == 135 and report.features[0].n_current == 150


@pytest.mark.parametrize(
    ("cur", "match"),
    [
        (pd.DataFrame({"x": ["a", "b"]}), "non-numeric"),
        (pd.DataFrame({"z": [1.0, 2.0]}), "no column"),
        (pd.DataFrame({"x": [np.nan, np.nan]}), "no finite values"),
        (pd.DataFrame({"x": []}), "need rows"),
    ],
)
def test_detect_drift_errors(cur: pd.DataFrame, match: str) -> None:
    with pytest.raises(DriftError, match=match):
        detect_drift(pd.DataFrame({"x": [1.0, 2.0, 3.0]}), cur, EXACT, numeric=("x",))


# -- concept drift and health ---------------------------------------------------------------------
def test_concept_drift_regression_rmse() -> None:
    y = np.array([1.0, 2.0, 3.0, np.nan])
    p = np.array([1.5, 2.5, 2.5, 9.0])
    result = concept_drift(y, p, "regression", baseline_error=0.4, tolerance=0.2)
    assert result.metric == "rmse" and result.n_labelled == 3
    assert result.error == pytest.approx(0.5) and result.ratio == pytest.approx(1.25)
    assert result.drifted  # 0.5 > 0.4 × 1.2
    assert not concept_drift(y, p, "regression", 0.45, 0.2).drifted


def test_concept_drift_classification_error_rate() -> None:
    y = np.array([1, 0, 1, 0, 1.0])
    p = np.array([0.9, 0.2, 0.4, 0.7, 0.6])
    result = concept_drift(y, p, "classification", baseline_error=0.2, tolerance=0.5)
    assert result.metric == "error_rate" and result.error == pytest.approx(0.4)
    assert result.drifted


def test_concept_drift_needs_labels() -> None:
    with pytest.raises(DriftError, match="no labelled rows"):
        concept_drift([np.nan], [1.0], "regression", 1.0, 0.1)


def test_system_health() -> None:
    health = system_health([1.0, 2.0, 3.0, 4.0, np.nan], [200, 200, 503, 400, np.nan])
    assert (health.requests, health.errors) == (5, 2)  # 503 and no response; 400 is the client's
    assert health.error_rate == pytest.approx(0.4)
    assert health.p50_latency_ms == pytest.approx(2.5)
    assert health.p95_latency_ms == pytest.approx(np.percentile([1, 2, 3, 4], 95))
    empty = system_health([], [])
    assert empty.requests == 0 and empty.p95_latency_ms is None and empty.error_rate == 0.0


def test_fast_tail_keeps_scipy_p_values_above_the_tail_and_every_verdict() -> None:
    from mlplatform.core.drift import TAIL_P, ks_pvalues

    n = m = 20_000
    d = np.array([0.001, 0.005, 0.0118, 0.02, 0.05, 0.3])
    _, exact = ks_pvalues(d, n, m, "asymp")
    _, fast = ks_pvalues(d, n, m, "asymp", fast_tail=True)
    keep = exact >= TAIL_P
    np.testing.assert_array_equal(fast[keep], exact[keep])
    assert (fast[~keep] < 2 * TAIL_P).all() and (~keep).sum() >= 2
    for threshold in (0.001, 0.01, 0.05, 0.1):
        np.testing.assert_array_equal(fast <= threshold, exact <= threshold)
