"""Two-sample Kolmogorov-Smirnov for numeric columns: D of every column at once, p-values as
``scipy.stats.ks_2samp`` computes them.

:func:`ks_statistics` is ``ks_2samp(...).statistic`` for all columns at once (ties included);
:func:`ks_pvalues` reproduces ks_2samp's ``method="asymp"`` and ``method="auto"`` (exact for
samples of at most 10 000 rows, as scipy and Evidently's ``ks`` test do).

>>> rng = np.random.default_rng(2)
>>> d, p = ks_test(rng.normal(size=(500, 2)), rng.normal([0.0, 1.0], 1.0, size=(300, 2)))
>>> bool(p[0] > 0.05), bool(p[1] < 1e-6)
(True, True)
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special, stats

from mlplatform.config import KSMethod
from mlplatform.core.drift._scipy_private import attempt_exact_ks
from mlplatform.errors import DriftError

FloatArray = NDArray[np.float64]

#: ks_2samp's ``method="auto"`` is exact when both samples have at most this many rows.
MAX_EXACT_N = 10_000
#: Below this p-value the fast tail uses the limiting Kolmogorov distribution (see _asymp_p).
TAIL_P = 1e-4


def _columns(x: ArrayLike, name: str) -> FloatArray:
    """(n, k) finite floats → (k, n), a C-ordered copy (each row is then sorted in place)."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] == 0:
        raise DriftError(f"{name} must be a non-empty (rows, columns) array, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise DriftError(f"{name} has NaN or infinite values; drop them first")
    cols: FloatArray = np.array(a.T, order="C")
    return cols


def _sort_rows(*arrays: FloatArray) -> None:
    """Sort every row of every array in place, two rows at a time (numpy's sort releases the
    GIL: the columns of a 100k-row window are sorted on both cores)."""
    rows = [row for a in arrays for row in a]
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(np.ndarray.sort, rows))


def ks_statistics(ref: ArrayLike, cur: ArrayLike) -> FloatArray:
    """D_j = sup_x |F_ref,j(x) − F_cur,j(x)| for every column j; ref (n, k), cur (m, k) → (k,).

    Each column is sorted once, and only the points of the smaller sample a (size p, sorted
    a_0 ≤ ... ≤ a_{p-1}) are looked up in the larger b (size q). F_a − F_b can only rise at a
    point of a, so its maximum is taken there: (i+1)/p − #{b ≤ a_i}/q (exact at the last of
    equal values, lower before it). F_b − F_a can only rise at a point of b, and between two
    points of a it is largest just below the next one, where F_a = i/p (i points of a below)
    and F_b = #{b < a_i}/q; past the last point of a it is at most 0. So its maximum is
    max_i #{b < a_i}/q − i/p, clipped at 0. Every candidate is a pair of fractions scipy
    also compares (at a point of b, or dominated by one), with the same floats, so D equals
    ``ks_2samp(ref[:, j], cur[:, j], method="asymp").statistic`` bit for bit (scipy's exact
    method reports it rounded to the lattice h/lcm(n, m); :func:`ks_pvalues` does the same).
    """
    r, c = _columns(ref, "reference"), _columns(cur, "current")
    if r.shape[0] != c.shape[0]:
        raise DriftError(f"reference has {r.shape[0]} columns, current has {c.shape[0]}")
    _sort_rows(c, r)
    a, b = (r, c) if r.shape[1] <= c.shape[1] else (c, r)
    p, q = a.shape[1], b.shape[1]
    above, below = np.arange(1, p + 1) / p, np.arange(0, p) / p
    out = np.empty(r.shape[0])
    for j in range(r.shape[0]):
        a_over_b = np.max(above - np.searchsorted(b[j], a[j], side="right") / q)
        b_over_a = np.max(np.searchsorted(b[j], a[j], side="left") / q - below)
        out[j] = max(float(a_over_b), min(max(float(b_over_a), 0.0), 1.0))
    return out


def _asymp_p(d: FloatArray, n: int, m: int, fast_tail: bool = False) -> FloatArray:
    """scipy's asymptotic p = kstwo.sf(D, round(nm/(n+m))); d (k,) → (k,).

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
    ok, d_exact, p = attempt_exact_ks(d, n, m)
    if not ok:  # overflow: scipy falls back to the asymptotic p of the rounded D
        p = float(_asymp_p(np.array([d_exact]), n, m)[0])
    return float(d_exact), float(np.clip(p, 0, 1))


def ks_pvalues(
    d: FloatArray, n: int, m: int, method: KSMethod = "auto", fast_tail: bool = False
) -> tuple[FloatArray, FloatArray]:
    """(statistic, p-value) per column as ``ks_2samp(..., method=method)`` returns them;
    d (k,) → (k,), (k,).

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
