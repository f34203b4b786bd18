"""KL confidence bounds and the KL-LUCB best-arm search used by Anchor.

An "arm" is a candidate rule; pulling it draws samples z ~ D(·|rule) and counts how
many agree with the explained prediction, so its mean is the rule's precision p.
With p̂ from n pulls and an exploration level β, the KL bounds are

    U = max{q ≥ p̂ : n·KL(p̂‖q) ≤ β},   L = min{q ≤ p̂ : n·KL(p̂‖q) ≤ β}
    KL(p‖q) = p·log(p/q) + (1 − p)·log((1 − p)/(1 − q))

(Kaufmann & Kalyanakrishnan 2013; Ribeiro et al. 2018, Algorithm 3).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mlplatform.core.explain.types import FloatArray, IntArray

_EPS = 1e-12
_GRID, _GRID_PASSES = 64, 3
_LUCB_ROUNDS = 500  # hard stop of one best-arm search


def kl_bernoulli(p: FloatArray | float, q: FloatArray | float) -> FloatArray:
    """KL(p‖q) between Bernoulli(p) and Bernoulli(q), elementwise; 0·log 0 = 0."""
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    q = np.clip(np.asarray(q, dtype=np.float64), _EPS, 1.0 - _EPS)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(p > 0, p * np.log(p / q), 0.0)
        b = np.where(p < 1, (1.0 - p) * np.log((1.0 - p) / (1.0 - q)), 0.0)
    return np.asarray(a + b, dtype=np.float64)


def kl_upper(p_hat: FloatArray | float, level: FloatArray | float) -> FloatArray:
    """U: the largest q ≥ p̂ with KL(p̂‖q) ≤ level (level = β/n), rounded up.

    Pinsker's KL ≥ 2(q − p̂)² puts U in [p̂, min(1, p̂ + sqrt(level/2))]; three passes
    of a 64-point grid shrink that bracket 2^18-fold (KL(p̂‖q) grows with q ≥ p̂).
    Returns the bracket's upper end, so U is never underestimated.
    """
    shape = np.broadcast_shapes(np.shape(p_hat), np.shape(level))
    p = np.clip(np.broadcast_to(np.asarray(p_hat, dtype=np.float64), shape).ravel(), 0.0, 1.0)
    level = np.broadcast_to(np.asarray(level, dtype=np.float64), shape).ravel()
    lo, hi = p.copy(), np.minimum(1.0, p + np.sqrt(level / 2.0))
    steps = np.arange(1, _GRID + 1, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        const = np.where(p > 0, p * np.log(p), 0.0) + np.where(p < 1, (1 - p) * np.log1p(-p), 0.0)
        for _ in range(_GRID_PASSES):
            width = (hi - lo) / _GRID
            q = lo[:, None] + width[:, None] * steps
            tail = np.where(p[:, None] < 1, (1 - p[:, None]) * np.log1p(-q), 0.0)
            kl = const[:, None] - p[:, None] * np.log(q) - tail
            inside = (kl <= level[:, None]).sum(axis=1)
            lo = lo + inside * width
            hi = np.minimum(hi, lo + width)
    return np.asarray(np.where(p >= 1.0, 1.0, hi), dtype=np.float64).reshape(shape)


def kl_lower(p_hat: FloatArray | float, level: FloatArray | float) -> FloatArray:
    """L: the smallest q ≤ p̂ with KL(p̂‖q) ≤ level, i.e. 1 − U(1 − p̂); rounded down."""
    p = np.clip(np.asarray(p_hat, dtype=np.float64), 0.0, 1.0)
    return np.asarray(1.0 - kl_upper(1.0 - p, level), dtype=np.float64)


def exploration_rate(n_arms: int, t: int, delta: float) -> float:
    """β(t) = log(k·K·t^α/δ) + log log(k·K·t^α/δ), k = 405.5, α = 1.1 (KL-LUCB)."""
    base = float(np.log(405.5 * n_arms * t**1.1 / delta))
    return base + float(np.log(base))


Pull = Callable[[IntArray], FloatArray]
"""Draws one batch for each listed arm (in one model call); returns their positive counts."""


def lucb_top(
    n: FloatArray,
    positives: FloatArray,
    top: int,
    epsilon: float,
    delta: float,
    pull: Pull,
    batch: int,
) -> IntArray:
    """Indices of the ``top`` arms with the highest means, ε-approximately (KL-LUCB).

    Each round pulls the weakest arm of the current top set (lowest L) and the strongest
    outside it (highest U) with ``batch`` samples each, until U − L ≤ ε. ``n`` and
    ``positives`` (k,) are updated in place.
    """
    k = n.size
    if top >= k:
        return np.arange(k, dtype=np.int64)
    for t in range(1, _LUCB_ROUNDS + 1):
        order = np.argsort(-(positives / n), kind="stable")
        best, rest = order[:top], order[top:]
        level = exploration_rate(k, t, delta) / n
        lower = kl_lower(positives[best] / n[best], level[best])
        upper = kl_upper(positives[rest] / n[rest], level[rest])
        weak, strong = best[np.argmin(lower)], rest[np.argmax(upper)]
        if upper.max() - lower.min() <= epsilon:
            break
        arms = np.array([weak, strong], dtype=np.int64)
        positives[arms] += pull(arms)
        n[arms] += batch
    return np.sort(np.argsort(-(positives / n), kind="stable")[:top])
