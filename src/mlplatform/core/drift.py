"""Drift statistics: KS for numeric features, chi-square or PSI for categorical ones, concept
drift from labelled traffic, and the health of the serving path.

Every statistic equals its scipy counterpart: :func:`ks_statistics` is
``scipy.stats.ks_2samp(...).statistic`` for all columns at once (ties included),
:func:`ks_pvalues` reproduces ks_2samp's ``method="asymp"`` and ``method="auto"`` (exact for
samples of at most 10 000 rows, as scipy and Evidently's ``ks`` test do), and
:func:`chi2_contingency_test` is ``scipy.stats.chi2_contingency(table, correction=False)``.
:func:`detect_drift` mirrors Evidently's DataDriftPreset: a column drifts when its p-value is
below the threshold (KS: at or below), the dataset drifts when the share of drifted columns
reaches ``drift_share``.

>>> rng = np.random.default_rng(2)
>>> d, p = ks_test(rng.normal(size=(500, 2)), rng.normal([0.0, 1.0], 1.0, size=(300, 2)))
>>> bool(p[0] > 0.05), bool(p[1] < 1e-6)
(True, True)
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import special, stats

from mlplatform.errors import PlatformError

FloatArray = NDArray[np.float64]
KSMethod = Literal["auto", "asymp"]
CatMethod = Literal["chi2", "chisquare", "psi"]
#: ks_2samp's ``method="auto"`` is exact when both samples have at most this many rows.
MAX_EXACT_N = 10_000


class DriftError(PlatformError):
    """Drift cannot be computed: an empty sample, a non-numeric value, a missing column."""


# -- numeric columns: two-sample Kolmogorov-Smirnov ---------------------------------------------
def _columns(x: ArrayLike, name: str) -> FloatArray:
    """(n, k) finite floats → (k, n), each row sorted."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] == 0:
        raise DriftError(f"{name} must be a non-empty (rows, columns) array, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise DriftError(f"{name} has NaN or infinite values; drop them first")
    cols: FloatArray = np.array(a.T, order="C")  # one copy, then sorted in place
    cols.sort(axis=1)
    return cols


def ks_statistics(ref: ArrayLike, cur: ArrayLike) -> FloatArray:
    """D_j = sup_x |F_ref,j(x) − F_cur,j(x)| for every column j; ref (n, k), cur (m, k) → (k,).

    Each column is sorted once. F_ref − F_cur can only rise at a reference point and fall at a
    current point, so max(F_ref − F_cur) is taken over the reference points, with F_ref at the
    i-th sorted point counted as (i+1)/n (exact at the last of equal values, lower before it)
    and F_cur = searchsorted(cur, x, "right")/m; symmetrically for max(F_cur − F_ref). The
    floats are those scipy compares, so D equals ``ks_2samp(ref[:, j], cur[:, j],
    method="asymp").statistic`` bit for bit (scipy's exact method reports it rounded to the
    lattice h/lcm(n, m); :func:`ks_pvalues` does the same).
    """
    with ThreadPoolExecutor(2) as pool:  # numpy's sort releases the GIL: both at once
        fr = pool.submit(_columns, ref, "reference")
        fc = pool.submit(_columns, cur, "current")
        r, c = fr.result(), fc.result()
    if r.shape[0] != c.shape[0]:
        raise DriftError(f"reference has {r.shape[0]} columns, current has {c.shape[0]}")
    n, m = r.shape[1], c.shape[1]
    step_r, step_c = np.arange(1, n + 1) / n, np.arange(1, m + 1) / m
    out = np.empty(r.shape[0])
    for j in range(r.shape[0]):
        d_plus = np.max(step_r - np.searchsorted(c[j], r[j], side="right") / m)
        d_minus = np.max(step_c - np.searchsorted(r[j], c[j], side="right") / n)
        out[j] = max(float(d_plus), min(float(d_minus), 1.0))
    return out


#: Below this p-value the fast tail uses the limiting Kolmogorov distribution (see _asymp_p).
TAIL_P = 1e-4


def _asymp_p(d: FloatArray, n: int, m: int, fast_tail: bool = False) -> FloatArray:
    """scipy's asymptotic p = kstwo.sf(D, round(nm/(n+m))).

    ``fast_tail``: kstwo.sf costs ~50 ms per column deep in its tail at n ~ 1e5, where the
    answer is "drifted" at any usual threshold. There, p = kolmogorov(D·√en) (the limit of the
    same distribution, within ~2 % of kstwo at that size) is used instead; every p ≥ TAIL_P is
    still scipy's exact value, so verdicts at thresholds ≥ TAIL_P are unchanged.
    """
    big, small = sorted([float(n), float(m)], reverse=True)
    en = np.round(big * small / (big + small))
    if fast_tail:
        limit = special.kolmogorov(d * np.sqrt(en))
        out: FloatArray = np.asarray(limit, dtype=np.float64)
        slow = limit >= TAIL_P
        if slow.any():
            out[slow] = _asymp_p(d[slow], n, m)
        return out
    with np.errstate(divide="ignore", invalid="ignore"):  # n = m = 1: kstwo(0) is NaN in scipy
        p: FloatArray = np.clip(stats.kstwo.sf(d, en), 0, 1)
    return p


def _exact(d: float, n: int, m: int) -> tuple[float, float]:
    """scipy's exact two-sided path: D rounded to h / lcm(n, m), then P(D_{n,m} ≥ D)."""
    from scipy.stats._stats_py import _attempt_exact_2kssamp  # the routine ks_2samp runs

    ok, d_exact, p = _attempt_exact_2kssamp(n, m, math.gcd(n, m), d, "two-sided")
    if not ok:  # overflow: scipy falls back to the asymptotic p of the rounded D
        p = float(_asymp_p(np.array([d_exact]), n, m)[0])
    return float(d_exact), float(np.clip(p, 0, 1))


def ks_pvalues(
    d: FloatArray, n: int, m: int, method: KSMethod = "auto", fast_tail: bool = False
) -> tuple[FloatArray, FloatArray]:
    """(statistic, p-value) per column as ``ks_2samp(..., method=method)`` returns them.

    ``asymp``: p = kstwo.sf(D, round(nm/(n+m))). ``auto``: the exact distribution when
    max(n, m) ≤ 10 000 (D reported as h/lcm(n, m), like scipy), else ``asymp``.
    """
    d = np.asarray(d, dtype=np.float64)
    if method == "asymp" or max(n, m) > MAX_EXACT_N:
        return d, _asymp_p(d, n, m, fast_tail)
    pairs = [_exact(float(x), n, m) for x in d]
    return np.array([s for s, _ in pairs]), np.array([p for _, p in pairs])


def ks_test(
    ref: ArrayLike, cur: ArrayLike, method: KSMethod = "auto", fast_tail: bool = False
) -> tuple[FloatArray, FloatArray]:
    """KS statistics and p-values of every column: ref (n, k), cur (m, k) → (k,), (k,)."""
    d = ks_statistics(ref, cur)
    return ks_pvalues(d, np.shape(ref)[0], np.shape(cur)[0], method, fast_tail)


# -- categorical columns: chi-square and PSI on category counts ---------------------------------
def category_counts(ref: pd.Series, cur: pd.Series) -> tuple[list[Any], FloatArray, FloatArray]:
    """Categories seen in either sample (NaN dropped, sorted by text) and their counts."""
    table = pd.concat({"ref": ref.value_counts(), "cur": cur.value_counts()}, axis=1).fillna(0)
    table = table.loc[sorted(table.index, key=str)]
    ref_counts = table["ref"].to_numpy(dtype=np.float64)
    return list(table.index), ref_counts, table["cur"].to_numpy(dtype=np.float64)


def chi2_contingency_test(ref_counts: ArrayLike, cur_counts: ArrayLike) -> tuple[float, float]:
    """Pearson χ² = Σ (O − E)²/E of the 2×c table [ref; cur], E = row sum × column sum / total,
    with c − 1 degrees of freedom: ``chi2_contingency(table, correction=False)[:2]``."""
    observed = np.vstack([ref_counts, cur_counts]).astype(np.float64)
    if observed.sum(axis=1).min() <= 0 or (observed.sum(axis=0) <= 0).any():
        raise DriftError("χ² needs both samples non-empty and every category observed")
    dof = observed.shape[1] - 1
    if dof == 0:
        return 0.0, 1.0
    expected = observed.sum(axis=1, keepdims=True) * observed.sum(axis=0, keepdims=True)
    expected = expected / observed.sum()
    statistic = float(((observed - expected) ** 2 / expected).sum())
    return statistic, float(stats.chi2.sf(statistic, dof))


def chisquare_test(ref_counts: ArrayLike, cur_counts: ArrayLike) -> tuple[float, float]:
    """Evidently's ``chisquare``: goodness of fit of the current counts O to the reference
    shares, E = ref × m/n; ``scipy.stats.chisquare(O, E)``. A category the reference never
    saw gives χ² = ∞, p = 0 (Evidently fails there)."""
    ref, cur = np.asarray(ref_counts, np.float64), np.asarray(cur_counts, np.float64)
    expected = ref * (cur.sum() / ref.sum())
    if ((expected == 0) & (cur > 0)).any():
        return math.inf, 0.0
    keep = expected > 0
    statistic = float(((cur[keep] - expected[keep]) ** 2 / expected[keep]).sum())
    return statistic, float(stats.chi2.sf(statistic, max(int(keep.sum()) - 1, 1)))


def _shares(counts: FloatArray) -> FloatArray:
    share = counts / counts.sum()
    low = share[share > 0].min()
    return np.where(share == 0, low / 1e6 if low <= 1e-4 else 1e-4, share)


def psi(ref_counts: ArrayLike, cur_counts: ArrayLike) -> float:
    """Population stability index Σ (r_i − c_i) ln(r_i / c_i) over category shares; an empty
    share is replaced by min(non-zero share)/10⁶ if that is ≤ 10⁻⁴, else by 10⁻⁴ (Evidently)."""
    r = _shares(np.asarray(ref_counts, np.float64))
    c = _shares(np.asarray(cur_counts, np.float64))
    return float(np.sum((r - c) * np.log(r / c)))


# -- per-feature and dataset drift ----------------------------------------------------------------
@dataclass(frozen=True)
class DriftSpec:
    """Which columns to test, how, and when a column or the dataset counts as drifted."""

    numeric: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    cat_method: CatMethod = "chi2"
    ks_method: KSMethod = "auto"
    threshold: float = 0.05  # p-value; a column drifts below it (KS: at or below, as Evidently)
    psi_threshold: float = 0.1  # PSI at or above it drifts
    drift_share: float = 0.5  # the dataset drifts when this share of columns drifts
    fast_tail: bool = False  # KS p below TAIL_P from the limiting distribution (_asymp_p)


@dataclass(frozen=True)
class FeatureDrift:
    """One column's test: its statistic, p-value (None for PSI) and verdict."""

    name: str
    kind: Literal["numeric", "categorical"]
    method: str
    statistic: float
    p_value: float | None
    drifted: bool
    n_reference: int
    n_current: int


@dataclass(frozen=True)
class DriftReport:
    """Per-feature results and the dataset verdict (share of drifted columns ≥ drift_share)."""

    features: tuple[FeatureDrift, ...]
    drift_share: float

    @property
    def drifted(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features if f.drifted)

    @property
    def share(self) -> float:
        return len(self.drifted) / len(self.features) if self.features else 0.0

    @property
    def dataset_drift(self) -> bool:
        return bool(self.features) and self.share >= self.drift_share

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset_drift": self.dataset_drift,
            "share": self.share,
            "drift_share": self.drift_share,
            "drifted": list(self.drifted),
            "features": [asdict(f) for f in self.features],
        }


def _numeric_matrix(frame: pd.DataFrame, names: tuple[str, ...], where: str) -> FloatArray:
    """The named columns as a (rows, k) float64 array (text that is not a number fails)."""
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise DriftError(f"{where} data has no column(s) {missing}")
    converted = {}
    for name in names:
        if not pd.api.types.is_numeric_dtype(frame[name]):
            try:
                converted[name] = pd.to_numeric(frame[name], errors="raise")
            except (TypeError, ValueError):
                raise DriftError(f"{where} column {name!r} has non-numeric values") from None
    block = frame[list(names)].assign(**converted) if converted else frame[list(names)]
    matrix: FloatArray = block.to_numpy(dtype=np.float64)
    return matrix


def _ks_features(ref: pd.DataFrame, cur: pd.DataFrame, spec: DriftSpec) -> list[FeatureDrift]:
    """Columns without NaN/inf in one matrix call; the others one by one, non-finite dropped."""
    R = _numeric_matrix(ref, spec.numeric, "reference")
    C = _numeric_matrix(cur, spec.numeric, "current")
    complete = np.isfinite(R).all(axis=0) & np.isfinite(C).all(axis=0)
    out: dict[int, tuple[float, float, int, int]] = {}  # column → D, p, n_ref, n_cur
    idx = np.flatnonzero(complete)
    if idx.size:
        r, c = (R, C) if complete.all() else (R[:, idx], C[:, idx])
        d, p = ks_test(r, c, spec.ks_method, spec.fast_tail)
        out.update({int(j): (d[i], p[i], len(r), len(c)) for i, j in enumerate(idx)})
    for j in np.flatnonzero(~complete):
        r, c = R[np.isfinite(R[:, j]), j], C[np.isfinite(C[:, j]), j]
        if not (r.size and c.size):
            raise DriftError(f"column {spec.numeric[j]!r} has no finite values in one sample")
        d, p = ks_test(r[:, None], c[:, None], spec.ks_method, spec.fast_tail)
        out[int(j)] = (d[0], p[0], r.size, c.size)
    return [
        FeatureDrift(name, "numeric", "ks", float(d), float(p), bool(p <= spec.threshold), nr, nc)
        for name, (d, p, nr, nc) in zip(
            spec.numeric, (out[j] for j in range(len(R.T))), strict=True
        )
    ]


def _categorical_feature(ref: pd.Series, cur: pd.Series, spec: DriftSpec) -> FeatureDrift:
    name, r, c = str(ref.name), ref.dropna(), cur.dropna()
    if r.empty or c.empty:
        raise DriftError(f"column {name!r} has no values in one sample")
    _, rc, cc = category_counts(r, c)
    if spec.cat_method == "psi":
        value = psi(rc, cc)
        drifted = value >= spec.psi_threshold
        return FeatureDrift(name, "categorical", "psi", value, None, drifted, len(r), len(c))
    test = chi2_contingency_test if spec.cat_method == "chi2" else chisquare_test
    statistic, p = test(rc, cc)
    drifted = p < spec.threshold
    return FeatureDrift(name, "categorical", spec.cat_method, statistic, p, drifted, len(r), len(c))


def detect_drift(reference: pd.DataFrame, current: pd.DataFrame, spec: DriftSpec) -> DriftReport:
    """Test every column of ``spec`` (non-finite values dropped per column, as Evidently does)."""
    if reference.empty or current.empty:
        raise DriftError(f"need rows in both samples, got {len(reference)} and {len(current)}")
    features = _ks_features(reference, current, spec) if spec.numeric else []
    for name in spec.categorical:
        if name not in reference.columns or name not in current.columns:
            raise DriftError(f"column {name!r} is missing from one sample")
        features.append(_categorical_feature(reference[name], current[name], spec))
    return DriftReport(tuple(features), spec.drift_share)


# -- concept drift and serving health -------------------------------------------------------------
@dataclass(frozen=True)
class ConceptDrift:
    """Error on labelled traffic against the validation error of the model."""

    metric: Literal["rmse", "error_rate"]
    error: float
    baseline_error: float
    ratio: float
    tolerance: float
    n_labelled: int
    drifted: bool


def prediction_error(
    labels: ArrayLike, predictions: ArrayLike, task: str, threshold: float = 0.5
) -> tuple[Literal["rmse", "error_rate"], float]:
    """Regression: RMSE = sqrt(mean((ŷ − y)²)). Classification: the share of rows where
    (P(class 1) ≥ threshold) disagrees with y = 1 (that is 1 − accuracy)."""
    y, p = np.asarray(labels, np.float64), np.asarray(predictions, np.float64)
    if task == "classification":
        return "error_rate", float(np.mean((p >= threshold) != (y == 1)))
    return "rmse", float(np.sqrt(np.mean((p - y) ** 2)))


def concept_drift(
    labels: ArrayLike,
    predictions: ArrayLike,
    task: str,
    baseline_error: float,
    tolerance: float,
    threshold: float = 0.5,
) -> ConceptDrift:
    """Drift when the error on labelled rows exceeds baseline × (1 + tolerance); rows with a
    missing label or prediction are left out."""
    y, p = np.asarray(labels, np.float64), np.asarray(predictions, np.float64)
    if y.shape != p.shape:
        raise DriftError(f"{y.shape[0]} labels for {p.shape[0]} predictions")
    keep = np.isfinite(y) & np.isfinite(p)
    if not keep.any():
        raise DriftError("no labelled rows with a prediction")
    metric, error = prediction_error(y[keep], p[keep], task, threshold)
    ratio = error / baseline_error if baseline_error > 0 else (math.inf if error > 0 else 1.0)
    drifted = error > baseline_error * (1 + tolerance)
    return ConceptDrift(metric, error, baseline_error, ratio, tolerance, int(keep.sum()), drifted)


@dataclass(frozen=True)
class SystemHealth:
    """Requests, errors (status ≥ 500 or no response) and latency percentiles of a window."""

    requests: int
    errors: int
    error_rate: float
    p50_latency_ms: float | None
    p95_latency_ms: float | None


def system_health(latency_ms: ArrayLike, status: ArrayLike) -> SystemHealth:
    """One entry per request; a missing status (no response) counts as an error, as in the
    rollout statistics. Percentiles are numpy's linear ones over the known latencies."""
    lat = np.asarray(latency_ms, np.float64)
    code = np.asarray(status, np.float64)
    errors = int(np.sum(~np.isfinite(code) | (code >= 500)))
    lat = lat[np.isfinite(lat)]
    p50, p95 = (float(v) for v in np.percentile(lat, [50, 95])) if lat.size else (None, None)
    rate = errors / code.size if code.size else 0.0
    return SystemHealth(int(code.size), errors, rate, p50, p95)
