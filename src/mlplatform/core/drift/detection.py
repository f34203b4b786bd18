"""Data drift of a DataFrame against a reference, per column and for the dataset.

Mirrors Evidently's DataDriftPreset: KS for numeric columns (a column drifts when p ≤
``threshold``), χ² / goodness of fit (p < ``threshold``) or PSI (≥ ``psi_threshold``) for
categorical ones; the dataset drifts when the share of drifted columns reaches
``drift_share``. Every setting is read from the config's ``monitor`` section
(:class:`~mlplatform.config.MonitorConfig`); only the column names come from the model.

>>> import pandas as pd
>>> from mlplatform.config import MonitorConfig
>>> ref = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "c": list("abab")})
>>> report = detect_drift(ref, ref, MonitorConfig(), numeric=("x",), categorical=("c",))
>>> report.drifted, report.dataset_drift
((), False)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from mlplatform.config import MonitorConfig
from mlplatform.core.drift.categorical import (
    category_counts,
    chi2_contingency_test,
    chisquare_test,
    psi,
)
from mlplatform.core.drift.ks import ks_test
from mlplatform.core.drift.report import DriftReport, FeatureDrift
from mlplatform.errors import DriftError

FloatArray = NDArray[np.float64]


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


def _ks_features(
    ref: pd.DataFrame, cur: pd.DataFrame, names: tuple[str, ...], s: MonitorConfig
) -> list[FeatureDrift]:
    """Columns without NaN/inf in one matrix call; the others one by one, non-finite dropped."""
    R = _numeric_matrix(ref, names, "reference")
    C = _numeric_matrix(cur, names, "current")
    complete = np.isfinite(R).all(axis=0) & np.isfinite(C).all(axis=0)
    out: dict[int, tuple[float, float, int, int]] = {}  # column → D, p, n_ref, n_cur
    idx = np.flatnonzero(complete)
    if idx.size:
        r, c = (R, C) if complete.all() else (R[:, idx], C[:, idx])
        d, p = ks_test(r, c, s.ks_method, s.ks_fast_tail)
        out.update({int(j): (d[i], p[i], len(r), len(c)) for i, j in enumerate(idx)})
    for j in np.flatnonzero(~complete):
        r, c = R[np.isfinite(R[:, j]), j], C[np.isfinite(C[:, j]), j]
        if not (r.size and c.size):
            raise DriftError(f"column {names[j]!r} has no finite values in one sample")
        d, p = ks_test(r[:, None], c[:, None], s.ks_method, s.ks_fast_tail)
        out[int(j)] = (d[0], p[0], r.size, c.size)
    return [
        FeatureDrift(name, "numeric", "ks", float(d), float(p), bool(p <= s.threshold), nr, nc)
        for name, (d, p, nr, nc) in zip(names, (out[j] for j in range(len(R.T))), strict=True)
    ]


def _categorical_feature(ref: pd.Series, cur: pd.Series, s: MonitorConfig) -> FeatureDrift:
    """One categorical column by ``s.cat_method``, missing values dropped."""
    name = str(ref.name)
    _, rc, cc = category_counts(ref, cur)  # counts leave missing values out
    n_ref, n_cur = int(rc.sum()), int(cc.sum())
    if not (n_ref and n_cur):
        raise DriftError(f"column {name!r} has no values in one sample")
    if s.cat_method == "psi":
        value = psi(rc, cc)
        drifted = value >= s.psi_threshold
        return FeatureDrift(name, "categorical", "psi", value, None, drifted, n_ref, n_cur)
    test = chi2_contingency_test if s.cat_method == "chi2" else chisquare_test
    statistic, p = test(rc, cc)
    drifted = p < s.threshold
    return FeatureDrift(name, "categorical", s.cat_method, statistic, p, drifted, n_ref, n_cur)


def detect_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    settings: MonitorConfig,
    *,
    numeric: tuple[str, ...] = (),
    categorical: tuple[str, ...] = (),
) -> DriftReport:
    """Test the ``numeric`` and ``categorical`` columns of ``current`` (m rows) against
    ``reference`` (n rows) with the tests and thresholds of ``settings``; non-finite values
    are dropped per column, as Evidently does."""
    if reference.empty or current.empty:
        raise DriftError(f"need rows in both samples, got {len(reference)} and {len(current)}")
    features = _ks_features(reference, current, numeric, settings) if numeric else []
    for name in categorical:
        if name not in reference.columns or name not in current.columns:
            raise DriftError(f"column {name!r} is missing from one sample")
        features.append(_categorical_feature(reference[name], current[name], settings))
    return DriftReport(tuple(features), settings.drift_share)
