"""Categorical columns: category counts, then chi-square or the population stability index.

:func:`chi2_contingency_test` is ``scipy.stats.chi2_contingency(table, correction=False)``,
:func:`chisquare_test` is Evidently's ``chisquare`` goodness of fit, :func:`psi` is Evidently's
PSI. Counts are (c,) float arrays over the c categories seen in either sample.

>>> chi2_contingency_test([50, 50], [50, 50])
(0.0, 1.0)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from mlplatform.errors import DriftError

FloatArray = NDArray[np.float64]


def category_counts(ref: pd.Series, cur: pd.Series) -> tuple[list[Any], FloatArray, FloatArray]:
    """Categories seen in either sample (NaN dropped, sorted by text) and their counts:
    ref (n,), cur (m,) → (categories, ref counts (c,), cur counts (c,))."""
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
    """counts (c,) → shares (c,), an empty share replaced as :func:`psi` describes."""
    share = counts / counts.sum()
    low = share[share > 0].min()
    return np.where(share == 0, low / 1e6 if low <= 1e-4 else 1e-4, share)


def psi(ref_counts: ArrayLike, cur_counts: ArrayLike) -> float:
    """Population stability index Σ (r_i − c_i) ln(r_i / c_i) over category shares; an empty
    share is replaced by min(non-zero share)/10⁶ if that is ≤ 10⁻⁴, else by 10⁻⁴ (Evidently)."""
    r = _shares(np.asarray(ref_counts, np.float64))
    c = _shares(np.asarray(cur_counts, np.float64))
    return float(np.sum((r - c) * np.log(r / c)))
