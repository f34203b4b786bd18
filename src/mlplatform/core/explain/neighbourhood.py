"""LIME's neighbourhood of a row: sampling, kernel weights and the surrogate's inputs.

The geometry follows ``lime``'s ``LimeTabularExplainer(discretize_continuous=False,
sample_around_instance=True)`` so both give the same explanation at equal settings:

* numeric column j: z_j = x_j + s_j·ε, ε ~ N(0, 1), with s_j the training standard
  deviation of the normalized column (1 when it is constant, like sklearn's scaler);
* categorical column j: z_j drawn from the training frequencies of its codes;
* the first sample of every neighbourhood is x itself;
* distance D(x, z)² = Σ_numeric ((z_j − x_j)/s_j)² + Σ_categorical 1[z_j ≠ x_j];
* the surrogate's inputs are u_j = (z_j − x_j)/s_j (numeric) and 1[z_j = x_j]
  (categorical): lime's standardized inputs, shifted by a constant per row.

Large batches are processed in row chunks so that temporaries stay in cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlplatform.core.explain.types import FloatArray, IntArray
from mlplatform.core.space import FeatureSpace


@dataclass(frozen=True, eq=False)
class Background:
    """What the neighbourhoods need from the training rows.

    ``scale``: (d,) s_j (1 for categorical columns); ``codes[k]``/``cumprob[k]``: the
    codes of the k-th categorical column seen in training and their cumulative shares.
    """

    data: FloatArray
    numeric: IntArray
    categorical: IntArray
    scale: FloatArray
    codes: tuple[FloatArray, ...]
    cumprob: tuple[FloatArray, ...]


def summarize_background(background: FloatArray, space: FeatureSpace) -> Background:
    """Standard deviations and code frequencies of validated background rows (n_bg, d)."""
    sd = background.std(axis=0)
    scale = np.where(sd > 0, sd, 1.0)
    cat = np.asarray(space.categorical, dtype=np.int64)
    scale[cat] = 1.0
    codes, cumprob = [], []
    for j in cat:
        values, counts = np.unique(background[:, j], return_counts=True)
        codes.append(values.astype(np.float64))
        cumprob.append(np.cumsum(counts) / counts.sum())
    numeric = np.asarray(space.numeric, dtype=np.int64)
    return Background(background, numeric, cat, scale, tuple(codes), tuple(cumprob))


_CHUNK_VALUES = 1 << 18  # working-set values per chunk (2 MiB of float64), kept in cache


def row_chunks(R: int, N: int, d: int) -> list[slice]:
    """Row slices whose (rows, N, d) temporaries hold about ``_CHUNK_VALUES`` values."""
    step = max(1, _CHUNK_VALUES // max(1, N * d))
    return [slice(i, min(i + step, R)) for i in range(0, R, step)]


@dataclass(frozen=True, eq=False)
class Neighbourhood:
    """Samples Z (R, N, d) around R rows and their squared distances d2 = D(x, z)² (R, N)."""

    Z: FloatArray
    d2: FloatArray


def sample_neighbourhood(
    X: FloatArray, bg: Background, num_samples: int, rng: np.random.Generator
) -> Neighbourhood:
    """N samples around each row of X: (R, d); sample 0 is x itself (module docstring).

    Filled chunk by chunk so the temporaries stay small; only Z is full size.
    """
    R, d = X.shape
    Z, d2 = np.empty((R, num_samples, d)), np.empty((R, num_samples))
    chunks = row_chunks(R, num_samples, d)
    buf = np.empty((chunks[0].stop - chunks[0].start, num_samples, bg.numeric.size))
    for sl in chunks:
        eps = buf[: sl.stop - sl.start]
        rng.standard_normal(out=eps)
        eps[:, 0, :] = 0.0
        _fill(X[sl], eps, bg, rng, Z[sl], d2[sl])
    return Neighbourhood(Z, d2)


def _fill(
    X: FloatArray,
    eps: FloatArray,
    bg: Background,
    rng: np.random.Generator,
    Z: FloatArray,
    d2: FloatArray,
) -> None:
    """Write the samples of rows X (r, d) from standard normals eps (r, N, n_numeric)."""
    num = bg.numeric
    np.einsum("rnj,rnj->rn", eps, eps, out=d2)
    if num.size == X.shape[1]:  # all numeric: no column scatter
        np.multiply(eps, bg.scale, out=Z)
        Z += X[:, None, :]
    else:
        Z[:, :, num] = eps * bg.scale[num] + X[:, None, num]
    for k, j in enumerate(bg.categorical):
        draw = np.searchsorted(bg.cumprob[k], rng.random(Z.shape[:2]), side="right")
        Z[:, :, j] = bg.codes[k][np.minimum(draw, bg.codes[k].size - 1)]
        Z[:, 0, j] = X[:, j]
        d2 += Z[:, :, j] != X[:, None, j]


def surrogate_inputs(Z: FloatArray, X: FloatArray, bg: Background) -> FloatArray:
    """U (r, N, d): the surrogate's inputs relative to x for samples Z (r, N, d).

    u_j = (z_j − x_j)/s_j for a numeric column (lime's standardized input, shifted by a
    constant) and u_j = 1[z_j = x_j] for a categorical one.
    """
    U = Z - X[:, None, :]
    U /= bg.scale
    cat = bg.categorical
    U[:, :, cat] = U[:, :, cat] == 0.0
    return U


def kernel_weights(d2: FloatArray, width: float) -> FloatArray:
    """π_x(z) = exp(−D(x, z)²/σ²) for squared distances d2, σ = ``width``."""
    return np.asarray(np.exp(-d2 / width**2), dtype=np.float64)
