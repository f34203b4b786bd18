"""LIME's neighbourhood of a row: sampling, kernel weights, the surrogate's inputs and
their weighted moments (:mod:`.surrogate`).

The geometry follows ``lime``'s ``LimeTabularExplainer(discretize_continuous=False,
sample_around_instance=True)`` so both give the same explanation at equal settings:

* numeric column j: z_j = x_j + s_j·ε, ε ~ N(0, 1), with s_j the training standard
  deviation of the normalized column (1 when it is constant, like sklearn's scaler);
* categorical column j: z_j drawn from the training frequencies of its codes;
* the first sample of every neighbourhood is x itself;
* distance D(x, z)² = Σ_numeric ((z_j − x_j)/s_j)² + Σ_categorical 1[z_j ≠ x_j];
* the surrogate's inputs are u_j = (z_j − x_j)/s_j (numeric) and 1[z_j = x_j]
  (categorical): lime's standardized inputs, shifted by a constant per row.

Independent neighbourhoods (:func:`sample_neighbourhood`) are processed in row chunks so
that temporaries stay in cache.

Common random numbers (:func:`sample_shared`): one noise draw ε (N, n_numeric) and one
categorical draw c (N, n_categorical) serve every row of a batch, z = x + s·ε with the
row's own x. Within a row the N samples are still i.i.d. from LIME's distribution, so
each explanation is an exact LIME explanation; only different rows' neighbourhoods are
correlated. Because u and D(x, z) depend on x only through its categorical values, rows
with equal categorical values share the surrogate's inputs U (N, d) and weights π
exactly (a :class:`Design`): their Gram matrix is computed once and only the targets
f(z) differ. (Consequence: duplicated rows in one batch get identical explanations, so
seed-stability runs must use :func:`sample_neighbourhood`.)
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from mlplatform.core.explain.surrogate import Moments, shared_moments, weighted_moments
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


@dataclass(frozen=True, eq=False)
class Design:
    """Inputs U (N, d) and squared distances d2 (N,) shared by the batch's ``rows`` (m,)."""

    rows: IntArray
    U: FloatArray
    d2: FloatArray


@dataclass(frozen=True, eq=False)
class SharedNeighbourhood:
    """Samples Z (R, N, d) from one noise draw and one :class:`Design` per categorical key."""

    Z: FloatArray
    designs: tuple[Design, ...]


def sample_shared(
    X: FloatArray, bg: Background, num_samples: int, rng: np.random.Generator
) -> SharedNeighbourhood:
    """N samples around each row of X: (R, d) from noise shared by all rows (module docstring).

    Draws in the order :func:`sample_neighbourhood` does for one row, so a one-row batch
    gets the same samples from either function.
    """
    N, d = num_samples, X.shape[1]
    num, cat = bg.numeric, bg.categorical
    eps = rng.standard_normal((N, num.size))
    eps[0] = 0.0
    codes = np.empty((N, cat.size))
    for k in range(cat.size):
        draw = np.searchsorted(bg.cumprob[k], rng.random(N), side="right")
        codes[:, k] = bg.codes[k][np.minimum(draw, bg.codes[k].size - 1)]
    base = np.empty((N, d))
    base[:, num] = eps * bg.scale[num]
    base[:, cat] = codes
    shift = X.copy()
    shift[:, cat] = 0.0
    Z = _add_rows(base, shift)
    Z[:, 0, :] = X
    return SharedNeighbourhood(Z, _designs(X, eps, codes, bg))


def _add_rows(base: FloatArray, X: FloatArray) -> FloatArray:
    """Z (R, N, d) with Z[r] = base (N, d) + X[r] for rows X: (R, d).

    A broadcast add runs numpy's inner loop over only d values; adding x tiled k times to
    blocks of k samples (k: the largest divisor of N up to 256) makes that loop k·d long,
    about 1.5× faster for d = 10.
    """
    (N, d), R = base.shape, X.shape[0]
    k = max(b for b in range(1, min(N, 256) + 1) if N % b == 0)
    Z = np.empty((R, N, d))
    blocks = Z.reshape(R, N // k, k * d)
    np.add(base.reshape(N // k, k * d), np.tile(X, (1, k))[:, None, :], out=blocks)
    return Z


def _designs(
    X: FloatArray, eps: FloatArray, codes: FloatArray, bg: Background
) -> tuple[Design, ...]:
    """One design per distinct tuple of categorical values among the rows X (R, d)."""
    keys, group = np.unique(X[:, bg.categorical], axis=0, return_inverse=True)
    group = group.reshape(-1)
    d2_numeric = np.einsum("nj,nj->n", eps, eps)
    designs = []
    for g, key in enumerate(keys):
        same = codes == key
        same[0] = True  # sample 0 is x itself
        U = np.empty((eps.shape[0], X.shape[1]))
        U[:, bg.numeric] = eps
        U[:, bg.categorical] = same
        mismatches = (~same).sum(axis=1)
        designs.append(Design(np.flatnonzero(group == g), U, d2_numeric + mismatches))
    return tuple(designs)


def neighbourhood_moments(
    nb: Neighbourhood, X: FloatArray, y: FloatArray, w: FloatArray, bg: Background
) -> Moments:
    """Weighted moments of the surrogate inputs of every neighbourhood, chunk by chunk."""
    R, N, d = nb.Z.shape
    parts = [
        weighted_moments(surrogate_inputs(nb.Z[sl], X[sl], bg), y[sl], w[sl])
        for sl in row_chunks(R, N, d)
    ]
    return Moments(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Moments)))


def shared_neighbourhood_moments(nb: SharedNeighbourhood, y: FloatArray, width: float) -> Moments:
    """Moments of rows that share designs: one Gram matrix per design, rows in batch order."""
    if len(nb.designs) == 1:  # keep the broadcast Gram matrix: ridge_fit then solves once
        return shared_moments(nb.designs[0].U, y, kernel_weights(nb.designs[0].d2, width))
    parts = [
        (g.rows, shared_moments(g.U, y[g.rows], kernel_weights(g.d2, width))) for g in nb.designs
    ]
    R = y.shape[0]
    merged = []
    for f in fields(Moments):
        out = np.empty((R, *getattr(parts[0][1], f.name).shape[1:]))
        for rows, p in parts:
            out[rows] = getattr(p, f.name)
        merged.append(out)
    return Moments(*merged)
