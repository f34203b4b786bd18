"""Quality of LIME explanations: local fidelity on fresh samples, and stability.

* Fidelity: Fid(x) = E_{z~π_x}[(f(z) − g(z))²] = Σ π (f − g)² / Σ π on a fresh
  neighbourhood, and the weighted R² = 1 − Σ π (f − g)² / Σ π (f − f̄_π)².
* Stability across seeds: S independent neighbourhoods of the same row (one batch,
  the same as S seeds); stability under perturbation: rows x + N(0, ε²) on the
  numeric columns (ε = ``cfg.perturbation_scale``). Each reports the mean Jaccard
  |A ∩ B|/|A ∪ B| of the top-k feature sets and the coefficient spread
  mean_j sd_s(β_sj) / mean_j |mean_s β_sj| (0 = identical coefficients).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from mlplatform.config import ExplainConfig
from mlplatform.core.explain.lime import LimeExplanation, explain_prepared
from mlplatform.core.explain.neighbourhood import (
    Background,
    Neighbourhood,
    kernel_weights,
    sample_neighbourhood,
)
from mlplatform.core.explain.quartile import BinnedNeighbourhood, Quartiles, sample_quartile
from mlplatform.core.explain.target import ExplainTarget
from mlplatform.core.explain.types import FloatArray, PredictFn, call_model

_TINY = 1e-12


@dataclass(frozen=True)
class Fidelity:
    """Fid(x) (weighted mean squared error) and weighted R² of g against f around x."""

    loss: float
    r2: float


@dataclass(frozen=True)
class Stability:
    """Mean top-k Jaccard (1 = same features) and relative coefficient spread."""

    jaccard: float
    coef_spread: float


def lime_fidelity(
    predict_fn: PredictFn,
    explanations: Sequence[LimeExplanation],
    bg: Background,
    num_samples: int,
    rng: np.random.Generator,
    quartiles: Quartiles | None = None,
) -> tuple[Fidelity, ...]:
    """Fidelity of each explanation's surrogate on a fresh neighbourhood (one model call).

    Neighbourhoods of the quartile representation when ``quartiles`` are given.
    """
    X = np.stack([e.x for e in explanations])
    if quartiles is None:
        nb: Neighbourhood | BinnedNeighbourhood = sample_neighbourhood(X, bg, num_samples, rng)
    else:
        nb = sample_quartile(X, bg, quartiles, num_samples, rng)
    R, N, d = nb.Z.shape
    y = call_model(predict_fn, nb.Z.reshape(R * N, d)).reshape(R, N)
    out = []
    for r, e in enumerate(explanations):
        f = 1.0 - y[r] if e.target_class == 0 else y[r]
        w = kernel_weights(nb.d2[r], e.kernel_width)
        out.append(weighted_fidelity(f, e.predict(nb.Z[r]), w))
    return tuple(out)


def weighted_fidelity(f: FloatArray, g: FloatArray, w: FloatArray) -> Fidelity:
    """Fidelity of predictions g (n,) to f (n,) under weights w (n,) (module docstring)."""
    sse = float(np.sum(w * (f - g) ** 2))
    mean = float(np.sum(w * f) / np.sum(w))
    sst = float(np.sum(w * (f - mean) ** 2))
    r2 = 1.0 - sse / sst if sst > _TINY else float(sse <= _TINY)
    return Fidelity(sse / float(np.sum(w)), r2)


def jaccard(a: Sequence[int], b: Sequence[int]) -> float:
    """|A ∩ B| / |A ∪ B| of two feature sets (1 when both are empty)."""
    A, B = set(a), set(b)
    return len(A & B) / len(A | B) if A | B else 1.0


def coef_spread(coefs: FloatArray) -> float:
    """mean_j sd_s(β_sj) / mean_j |mean_s β_sj| for coefficients (S, d)."""
    scale = float(np.mean(np.abs(coefs.mean(axis=0))))
    return float(np.mean(coefs.std(axis=0)) / scale) if scale > _TINY else 0.0


def seed_stability(group: Sequence[LimeExplanation], k: int) -> Stability:
    """Mean pairwise top-k Jaccard and coefficient spread of explanations of one row."""
    tops = [e.top_features(k) for e in group]
    pairs = [jaccard(a, b) for a, b in combinations(tops, 2)]
    return Stability(float(np.mean(pairs)) if pairs else 1.0, _spread(group))


def perturbation_stability(
    base: LimeExplanation, perturbed: Sequence[LimeExplanation], k: int
) -> Stability:
    """Top-k Jaccard of each perturbed row's explanation against the base explanation."""
    pairs = [jaccard(base.top_features(k), e.top_features(k)) for e in perturbed]
    return Stability(float(np.mean(pairs)) if pairs else 1.0, _spread([base, *perturbed]))


def _spread(group: Sequence[LimeExplanation]) -> float:
    return coef_spread(np.stack([e.coefficients for e in group]))


@dataclass(frozen=True, eq=False)
class StabilityRun:
    """Base explanations (R) with their seed and perturbation stability (R each)."""

    base: tuple[LimeExplanation, ...]
    seeds: tuple[Stability, ...]
    perturbed: tuple[Stability, ...]


def lime_stability(
    target: ExplainTarget, X: FloatArray, cfg: ExplainConfig, rng: np.random.Generator
) -> StabilityRun:
    """Explain validated rows X: (R, d) S times and S perturbed copies, in one model call.

    The first of the S explanations of each row is its reported explanation.
    """
    R, S, numeric = X.shape[0], cfg.stability_seeds, target.background_summary.numeric
    noisy = np.repeat(X, S, axis=0)
    noisy[:, numeric] += rng.normal(0.0, cfg.perturbation_scale, (R * S, numeric.size))
    rows = np.concatenate([np.tile(X, (S, 1)), noisy])
    expl = explain_prepared(target, rows, cfg, rng)
    k = min(cfg.num_features, target.space.width)
    by_seed = [expl[r : R * S : R] for r in range(R)]
    by_noise = [expl[R * S + r * S : R * S + (r + 1) * S] for r in range(R)]
    return StabilityRun(
        base=tuple(g[0] for g in by_seed),
        seeds=tuple(seed_stability(g, k) for g in by_seed),
        perturbed=tuple(
            perturbation_stability(g[0], p, k) for g, p in zip(by_seed, by_noise, strict=True)
        ),
    )
