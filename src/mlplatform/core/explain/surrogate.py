"""Weighted (sparse) linear surrogates, fitted for many neighbourhoods at once.

Everything works on the weighted, centred second moments of each neighbourhood r
(shapes: R neighbourhoods, N samples, d features):

    ū = Σ w u / Σ w,  ȳ = Σ w y / Σ w
    G = Σ w (u − ū)(u − ū)ᵀ  (R, d, d),  b = Σ w (u − ū)(y − ȳ)  (R, d),  S = Σ w (y − ȳ)²

so a ridge fit on the features in mask m is β = (G_mm + αI)⁻¹ b_m, intercept ȳ − ū·β,
exactly sklearn's ``Ridge(alpha).fit(U, y, sample_weight=w)``, and any subset costs a
(d × d) solve instead of a pass over the N samples.

When neighbourhoods share their inputs and weights (:func:`shared_moments`), G and ū
are computed once and stored as read-only broadcast views (stride 0 over R): every
function below reads them as (R, ...) arrays, and when every feature is kept
:func:`ridge_fit` factorizes the one G once for all right-hand sides b. Forward
selection and the lasso stay vectorized over rows: they only index G and b.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlplatform.core.explain.types import BoolArray, FloatArray

_JITTER = 1e-10  # relative diagonal jitter: keeps constant columns solvable
_LASSO_GRID = 60  # penalties on the lasso path, geometric from λ_max down to 1e-4·λ_max
_LASSO_SWEEPS = 50  # coordinate-descent sweeps per penalty at most (warm-started)


@dataclass(frozen=True, eq=False)
class Moments:
    """Weighted centred moments of R neighbourhoods (module docstring)."""

    gram: FloatArray  # (R, d, d)
    cross: FloatArray  # (R, d)
    sst: FloatArray  # (R,)
    u_mean: FloatArray  # (R, d)
    y_mean: FloatArray  # (R,)
    weight_sum: FloatArray  # (R,)
    y_first: FloatArray  # (R,) y of the first sample, f(x) in a LIME neighbourhood


def weighted_moments(U: FloatArray, y: FloatArray, w: FloatArray) -> Moments:
    """Moments of inputs U: (R, N, d), targets y: (R, N) and weights w: (R, N).

    Uses G = Σ w u uᵀ − (Σ w u)(Σ w u)ᵀ/Σ w (one pass over the samples); y is shifted by
    its first value first, so large prediction offsets do not cancel digits.
    """
    y0 = y[:, :1]
    yc = y - y0
    sw = w.sum(axis=1)
    Uw = U * w[:, :, None]
    su = np.matmul(w[:, None, :], U)[:, 0, :]  # faster than Uw.sum(axis=1)
    gram = np.matmul(Uw.transpose(0, 2, 1), U)
    gram -= su[:, :, None] * su[:, None, :] / sw[:, None, None]
    wy = w * yc
    sy = wy.sum(axis=1)
    cross = np.matmul(yc[:, None, :], Uw)[:, 0, :] - su * (sy / sw)[:, None]
    sst = (wy * yc).sum(axis=1) - sy**2 / sw
    return Moments(
        gram, cross, np.maximum(sst, 0.0), su / sw[:, None], sy / sw + y0[:, 0], sw, y0[:, 0]
    )


def shared_moments(U: FloatArray, Y: FloatArray, w: FloatArray) -> Moments:
    """Moments of R neighbourhoods with common inputs U: (N, d) and weights w: (N,).

    Only the targets Y: (R, N) differ, so G = Ũᵀ W Ũ (Ũ = U − ū) is formed once and
    b = (Y − ȳ) W Ũ for all rows is one (R × N)·(N × d) product.
    """
    R, d = Y.shape[0], U.shape[1]
    sw = float(w.sum())
    u_mean = (w @ U) / sw
    Uc = U - u_mean
    WUc = Uc * w[:, None]
    gram = Uc.T @ WUc
    y_mean = (Y @ w) / sw
    Yc = Y - y_mean[:, None]
    cross = Yc @ WUc
    np.square(Yc, out=Yc)
    sst = Yc @ w
    return Moments(
        np.broadcast_to(gram, (R, d, d)),
        cross,
        np.maximum(sst, 0.0),
        np.broadcast_to(u_mean, (R, d)),
        y_mean,
        np.full(R, sw),
        Y[:, 0].copy(),
    )


def is_shared(gram: FloatArray) -> bool:
    """Whether every neighbourhood's Gram matrix is the same (a broadcast view or R = 1)."""
    return gram.shape[0] == 1 or gram.strides[0] == 0


def ridge_fit(m: Moments, mask: BoolArray, alpha: float) -> tuple[FloatArray, FloatArray]:
    """Ridge on the features where ``mask`` (R, d) is True: coef (R, d) (0 elsewhere), b₀ (R,).

    Unselected features get an identity row and a zero right-hand side, so one batched
    (d × d) solve serves neighbourhoods with different selections; a shared G with every
    feature selected is solved once with a (d × R) right-hand side.
    """
    d = mask.shape[1]
    if is_shared(m.gram) and mask.all():
        G = m.gram[0] + (alpha + _JITTER * _diag_scale(m.gram[:1])[0]) * np.eye(d)
        coef = np.linalg.solve(G, m.cross.T).T
        return coef, m.y_mean - (m.u_mean * coef).sum(axis=1)
    pair = mask[:, :, None] & mask[:, None, :]
    eye = np.eye(d, dtype=bool)[None]
    G = np.where(pair, m.gram, 0.0) + np.where(eye & ~mask[:, :, None], 1.0, 0.0)
    G += (alpha + _JITTER * _diag_scale(m.gram))[:, None, None] * (eye & mask[:, :, None])
    coef = np.linalg.solve(G, np.where(mask, m.cross, 0.0)[:, :, None])[:, :, 0]
    return coef, m.y_mean - (m.u_mean * coef).sum(axis=1)


def weighted_r2(m: Moments, coef: FloatArray) -> FloatArray:
    """Weighted R² (R,) of a fit: 1 − SSE/S with SSE = S − 2βᵀb + βᵀGβ."""
    return 1.0 - residual_ss(m, coef) / np.maximum(m.sst, np.finfo(float).tiny)


def residual_ss(m: Moments, coef: FloatArray) -> FloatArray:
    """Σ w (y − ŷ)² (R,) of coefficients (R, d) fitted with an intercept."""
    quad = np.einsum("ri,rij,rj->r", coef, m.gram, coef)
    return np.asarray(np.maximum(m.sst - 2 * (coef * m.cross).sum(axis=1) + quad, 0.0))


def forward_select(m: Moments, k: int) -> BoolArray:
    """Greedy forward selection of k features per neighbourhood, as ``lime`` does.

    Each step adds the feature whose unpenalized weighted least-squares fit on
    S ∪ {j} explains the most variance: max_j b_Sᵀ G_SS⁻¹ b_S (equivalently max R²).
    """
    R, d = m.cross.shape
    chosen = np.zeros((R, 0), dtype=np.int64)
    for _ in range(k):
        cand = np.concatenate([np.repeat(chosen[:, None, :], d, axis=1), _arange(R, d)], axis=2)
        explained = _explained(m, cand)
        taken = (chosen[:, :, None] == np.arange(d)[None, None, :]).any(axis=1)
        best = np.argmax(np.where(taken, -np.inf, explained), axis=1)
        chosen = np.concatenate([chosen, best[:, None]], axis=1)
    mask = np.zeros((R, d), dtype=bool)
    np.put_along_axis(mask, chosen, True, axis=1)
    return mask


def _arange(R: int, d: int) -> np.ndarray:
    return np.broadcast_to(np.arange(d)[None, :, None], (R, d, 1))


def _explained(m: Moments, cand: np.ndarray) -> FloatArray:
    """b_Sᵀ G_SS⁻¹ b_S for every candidate subset ``cand`` (R, c, s) of feature indices."""
    r = np.arange(cand.shape[0])[:, None, None, None]
    G = m.gram[r, cand[:, :, :, None], cand[:, :, None, :]]
    b = np.take_along_axis(m.cross[:, None, :], cand, axis=2)
    jitter = _JITTER * _diag_scale(m.gram)[:, None, None, None] * np.eye(cand.shape[2])
    sol = np.linalg.solve(G + jitter, b[..., None])[..., 0]
    return np.asarray((b * sol).sum(axis=2), dtype=np.float64)


def _diag_scale(gram: FloatArray) -> FloatArray:
    return np.asarray(np.trace(gram, axis1=1, axis2=2) / gram.shape[1] + 1e-300)


def lasso_select(m: Moments, k: int) -> BoolArray:
    """Features on the weighted lasso path with at most k non-zero coefficients.

    Minimizes ½βᵀGβ − bᵀβ + λ‖β‖₁ (Ω(g) = λ‖β‖₁) by warm-started coordinate descent on
    a decreasing grid of λ, and keeps the support at the smallest λ whose support has at
    most k features (``lime``'s ``lasso_path`` rule, which walks the LARS path).
    """
    R, d = m.cross.shape
    lam_max = np.abs(m.cross).max(axis=1)
    beta = np.zeros((R, d))
    best = np.zeros((R, d), dtype=bool)
    open_ = np.ones(R, dtype=bool)
    for scale in np.geomspace(1.0, 1e-4, _LASSO_GRID)[1:]:
        beta = _lasso_cd(m, beta, lam_max * scale)
        support = beta != 0
        ok = open_ & (support.sum(axis=1) <= k)
        best[ok] = support[ok]
        open_ &= ok
        if not open_.any():
            break
    empty = ~best.any(axis=1)
    if empty.any():  # k features entered at once: keep the k most correlated ones
        corr = np.abs(m.cross) / np.sqrt(np.maximum(np.diagonal(m.gram, axis1=1, axis2=2), 1e-300))
        rows = np.flatnonzero(empty)
        best[rows[:, None], np.argsort(-corr[rows], axis=1)[:, :k]] = True
    return best


def _lasso_cd(m: Moments, beta: FloatArray, lam: FloatArray) -> FloatArray:
    """Coordinate descent β_j ← soft(b_j − Σ_{i≠j} G_ji β_i, λ) / G_jj until it settles."""
    beta = beta.copy()
    diag = np.maximum(np.diagonal(m.gram, axis1=1, axis2=2), 1e-300)
    for _ in range(_LASSO_SWEEPS):
        before = beta.copy()
        for j in range(beta.shape[1]):
            rho = (
                m.cross[:, j]
                - np.einsum("ri,ri->r", m.gram[:, j, :], beta)
                + diag[:, j] * beta[:, j]
            )
            beta[:, j] = np.sign(rho) * np.maximum(np.abs(rho) - lam, 0.0) / diag[:, j]
        if np.max(np.abs(beta - before)) <= 1e-9 * (np.max(np.abs(beta)) + 1e-300):
            break
    return beta
