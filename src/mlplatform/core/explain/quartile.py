"""LIME's discretized representation (``lime``'s default): quartile bins of the background.

Each numeric column j is cut at its background quartiles q₁ ≤ q₂ ≤ q₃ (repeated edges
dropped); bin(v) = #{edges < v}, so "v ≤ q₁" is bin 0. A neighbourhood of x, as in
``LimeTabularExplainer(discretize_continuous=True, discretizer="quartile")``:

* numeric column: a bin drawn from the background's bin shares, then a value from a
  normal with the bin's mean and sd truncated to the bin's [min, max] (the bin's one
  value when min = max); categorical column: a code drawn from its training shares;
* the first sample is x itself;
* the surrogate's inputs are u_j = 1[bin(z_j) = bin(x_j)] (1[z_j = x_j] for a
  categorical) and D(x, z)² = Σ_j (1 − u_j), the number of features that left x's bin.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mlplatform.core.explain.neighbourhood import Background
from mlplatform.core.explain.types import FloatArray

_MAX_REJECTION_ROUNDS = 64


@dataclass(frozen=True, eq=False)
class Quartiles:
    """Per numeric column j (index k in ``columns``): edges and per-bin statistics."""

    columns: tuple[int, ...]
    edges: tuple[FloatArray, ...]
    lo: tuple[FloatArray, ...]
    hi: tuple[FloatArray, ...]
    mean: tuple[FloatArray, ...]
    sd: tuple[FloatArray, ...]
    cumprob: tuple[FloatArray, ...]

    def edges_by_column(self, d: int) -> tuple[FloatArray, ...]:
        """(d,) tuple: the edges of each numeric column, empty arrays elsewhere."""
        out = [np.zeros(0) for _ in range(d)]
        for k, j in enumerate(self.columns):
            out[j] = self.edges[k]
        return tuple(out)


def fit_quartiles(bg: Background) -> Quartiles:
    """Quartile edges and bin statistics of the background's numeric columns."""
    stats: list[list[FloatArray]] = [[] for _ in range(6)]
    for j in bg.numeric:
        col = bg.data[:, j]
        edges = np.unique(np.percentile(col, [25, 50, 75]))
        bins = np.searchsorted(edges, col)
        n = edges.size + 1
        counts = np.bincount(bins, minlength=n).astype(np.float64)
        mean = np.array([col[bins == b].mean() if counts[b] else 0.0 for b in range(n)])
        sd = np.array([col[bins == b].std() if counts[b] else 0.0 for b in range(n)])
        lo = np.concatenate([[col.min()], edges])
        hi = np.concatenate([edges, [col.max()]])
        values = (edges, lo, hi, mean, sd + 1e-11, np.cumsum(counts) / col.size)
        for s, v in zip(stats, values, strict=True):
            s.append(v)
    columns = tuple(int(j) for j in bg.numeric)
    return Quartiles(columns, *(tuple(s) for s in stats))


@dataclass(frozen=True, eq=False)
class BinnedNeighbourhood:
    """Samples Z (R, N, d), their indicator inputs U (R, N, d) and D² (R, N)."""

    Z: FloatArray
    U: FloatArray
    d2: FloatArray


def sample_quartile(
    X: FloatArray, bg: Background, q: Quartiles, num_samples: int, rng: np.random.Generator
) -> BinnedNeighbourhood:
    """N samples around each row of X: (R, d) in the quartile representation."""
    R, d = X.shape
    Z, U = np.empty((R, num_samples, d)), np.empty((R, num_samples, d))
    for k, j in enumerate(q.columns):
        bins = _draw(q.cumprob[k], (R, num_samples), rng)
        Z[:, :, j] = _undiscretize(q, k, bins, rng)
        U[:, :, j] = bins == np.searchsorted(q.edges[k], X[:, j])[:, None]
    for k, j in enumerate(bg.categorical):
        codes = bg.codes[k][_draw(bg.cumprob[k], (R, num_samples), rng)]
        Z[:, :, j] = codes
        U[:, :, j] = codes == X[:, j][:, None]
    Z[:, 0, :] = X
    U[:, 0, :] = 1.0
    return BinnedNeighbourhood(Z, U, (1.0 - U).sum(axis=2))


def _draw(cumprob: FloatArray, shape: tuple[int, int], rng: np.random.Generator) -> FloatArray:
    idx = np.searchsorted(cumprob, rng.random(shape), side="right")
    return np.minimum(idx, cumprob.size - 1)


def _undiscretize(q: Quartiles, k: int, bins: FloatArray, rng: np.random.Generator) -> FloatArray:
    """Values for bin indices: normal(mean_b, sd_b) truncated to [lo_b, hi_b] by rejection."""
    lo, hi = q.lo[k][bins], q.hi[k][bins]
    mean, sd = q.mean[k][bins], q.sd[k][bins]
    out = np.where(lo == hi, lo, np.nan)
    todo = np.isnan(out)
    for _ in range(_MAX_REJECTION_ROUNDS):
        if not todo.any():
            break
        v = rng.normal(mean[todo], sd[todo])
        ok = (v >= lo[todo]) & (v <= hi[todo])
        idx = np.flatnonzero(todo)[ok]
        out.flat[idx] = v[ok]
        todo.flat[idx] = False
    out[todo] = np.clip(mean[todo], lo[todo], hi[todo])
    return out


def bin_label(name: str, edges: FloatArray, v: float, fmt: Callable[[float], str]) -> str:
    """x's bin in words, as ``lime`` names it: ``a <= q1``, ``q1 < a <= q2``, ``a > q3``."""
    b = int(np.searchsorted(edges, v))
    if b == 0:
        return f"{name} <= {fmt(float(edges[0]))}"
    if b == edges.size:
        return f"{name} > {fmt(float(edges[-1]))}"
    return f"{fmt(float(edges[b - 1]))} < {name} <= {fmt(float(edges[b]))}"
