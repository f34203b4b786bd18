"""Vectorized gradient descent for a linear model ŷ = Xw + b.

Objective J(θ) = L(Xw + b, y) + λ‖w‖² (the bias is not penalized), minimized by
θ ← θ − η ∇J with ∇_w J = Xᵀ ∂L/∂ŷ + 2λw and ∂J/∂b = Σᵢ ∂L/∂ŷᵢ, either on the
full batch (two passes over X per epoch: Xw and Xᵀg) or on shuffled mini-batches.
For MSE on the full batch, ``cache_gram`` precomputes G = AᵀA/N and c = Aᵀy/N
(A = [X 1]) once, so each epoch costs O(d²) instead of O(Nd).

History: ``train_loss[e]`` is J at the parameters entering epoch e; the last
entry is J at the returned parameters' epoch. With early stopping, the parameters
with the best validation loss (or training loss if no validation set) are returned.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from mlplatform.config import TrainConfig
from mlplatform.core.losses import loss_grad, loss_value
from mlplatform.errors import DataError, DivergenceError

FloatArray = NDArray[np.float64]
EpochCallback = Callable[[int, float, float | None], None]


@dataclass(frozen=True)
class FitResult:
    """Fitted parameters and the loss history (see the module docstring)."""

    weights: FloatArray  # (d,)
    bias: float
    train_loss: tuple[float, ...]
    val_loss: tuple[float, ...]
    best_epoch: int
    epochs_run: int
    stopped_early: bool

    @property
    def theta(self) -> FloatArray:
        """(d + 1,) = [w, b], the article's θ."""
        return np.append(self.weights, self.bias)


def as_floats(a: object, what: str) -> FloatArray:
    """``a`` as a float64 array, or :class:`DataError` when it holds non-numeric values."""
    try:
        return np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} data must be numeric: {exc}") from None


def check_xy(X: FloatArray, y: FloatArray, logistic: bool, what: str = "training") -> None:
    """Raise :class:`DataError` for empty, mis-shaped, non-finite or non-binary input."""
    if X.ndim != 2:
        raise DataError(f"{what} X must be 2-D (n, d), got shape {X.shape}")
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise DataError(f"{what} y must be 1-D with {X.shape[0]} rows, got shape {y.shape}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise DataError(f"{what} data is empty (shape {X.shape})")
    if not np.isfinite(X).all() or not np.isfinite(y).all():
        raise DataError(f"{what} data has NaN or infinite values")
    if logistic and not np.isin(y, (0.0, 1.0)).all():
        raise DataError(f"{what} labels must be 0 or 1 for the logistic loss")


def gram(X: FloatArray) -> FloatArray:
    """G = AᵀA/N for A = [X 1], without materializing A: (d+1, d+1), one pass over X."""
    n, d = X.shape
    G = np.empty((d + 1, d + 1))
    G[:-1, :-1] = X.T @ X / n
    G[:-1, -1] = G[-1, :-1] = X.sum(axis=0) / n
    G[-1, -1] = 1.0
    return G


class _Objective:
    """J and ∇J on one data set, with or without the cached Gram matrix."""

    def __init__(self, X: FloatArray, y: FloatArray, cfg: TrainConfig) -> None:
        self.X, self.y, self.cfg = X, y, cfg
        self._G: FloatArray | None = None
        if cfg.cache_gram:
            n = X.shape[0]
            self.c = np.append(X.T @ y / n, y.mean())
            self.yy = float(y @ y) / n

    @property
    def G(self) -> FloatArray:  # noqa: N802 (the matrix is G in the formulas)
        """AᵀA/N, computed on first use (cache_gram, or the 'auto' learning rate)."""
        if self._G is None:
            self._G = gram(self.X)
        return self._G

    def penalty(self, w: FloatArray) -> float:
        return self.cfg.l2 * float(w @ w)

    def value(self, w: FloatArray, b: float) -> float:
        if self.cfg.cache_gram:
            t = np.append(w, b)
            return float(t @ self.G @ t - 2 * self.c @ t + self.yy) + self.penalty(w)
        z = self.X @ w + b
        return loss_value(self.cfg.loss, z, self.y, self.cfg.huber_delta) + self.penalty(w)

    def value_and_grad(self, w: FloatArray, b: float) -> tuple[float, FloatArray, float]:
        """J(θ), ∇_w J, ∂J/∂b in two passes over X (or O(d²) with the Gram cache)."""
        if self.cfg.cache_gram:
            t = np.append(w, b)
            Gt = self.G @ t
            val = float(t @ Gt - 2 * self.c @ t + self.yy) + self.penalty(w)
            g = 2 * (Gt - self.c)
            return val, g[:-1] + 2 * self.cfg.l2 * w, float(g[-1])
        z = self.X @ w + b
        val = loss_value(self.cfg.loss, z, self.y, self.cfg.huber_delta) + self.penalty(w)
        g = loss_grad(self.cfg.loss, z, self.y, self.cfg.huber_delta)
        return val, self.X.T @ g + 2 * self.cfg.l2 * w, float(g.sum())


#: Curvature bound of each loss per unit of λmax(AᵀA/N): L = c·λmax + 2λ.
_CURVATURE = {"mse": 2.0, "huber": 1.0, "logistic": 0.25, "mae": 1.0}


def auto_learning_rate(obj: _Objective) -> float:
    """η = 1/L, with L the gradient's Lipschitz constant: c·λmax(AᵀA/N) + 2λ, A = [X 1].

    For MSE c = 2, Huber 1, logistic ¼. MAE is not smooth; it gets the Huber step, which
    bounds its oscillation. Costs one pass over X (the Gram matrix, shared with
    ``cache_gram``) and a (d+1)² eigenvalue problem.
    """
    lam_max = float(np.linalg.eigvalsh(obj.G)[-1])
    return 1.0 / (_CURVATURE[obj.cfg.loss] * lam_max + 2 * obj.cfg.l2)


def _minibatch_epoch(
    obj: _Objective, w: FloatArray, b: float, eta: float, rng: np.random.Generator
) -> tuple[FloatArray, float]:
    cfg, n = obj.cfg, obj.X.shape[0]
    bs = cfg.batch_size or n
    order = rng.permutation(n)
    for start in range(0, n, bs):
        idx = order[start : start + bs]
        batch = _Objective(obj.X[idx], obj.y[idx], cfg)
        _, gw, gb = batch.value_and_grad(w, b)
        w = w - eta * gw
        b = b - eta * gb
    return w, b


def _diverged(loss: float, best: float, epoch: int, cfg: TrainConfig) -> str | None:
    if not np.isfinite(loss):
        return f"the loss became {loss} at epoch {epoch}"
    if epoch > 0 and loss > cfg.divergence_factor * max(best, 1e-300):
        return f"the loss rose from {best:.4g} to {loss:.4g} by epoch {epoch}"
    return None


def _raise_divergence(reason: str, eta: float, cfg: TrainConfig) -> None:
    raise DivergenceError(
        f"gradient descent diverged: {reason} (learning rate η={eta:g}, "
        f"loss {cfg.loss}). Try a smaller learning rate (e.g. η={eta / 10:g}) "
        "or normalize the features (min-max or z-score)."
    )


def fit(
    X: FloatArray,
    y: FloatArray,
    cfg: TrainConfig,
    rng: np.random.Generator,
    X_val: FloatArray | None = None,
    y_val: FloatArray | None = None,
    theta0: FloatArray | None = None,
    on_epoch: EpochCallback | None = None,
) -> FitResult:
    """Minimize J(θ) by gradient descent. X: (n, d), y: (n,), θ₀: (d + 1,) = [w, b] or zeros."""
    X, y = as_floats(X, "training"), as_floats(y, "training")
    check_xy(X, y, cfg.loss == "logistic")
    val: _Objective | None = None
    if X_val is not None and y_val is not None:
        Xv, yv = as_floats(X_val, "validation"), as_floats(y_val, "validation")
        check_xy(Xv, yv, cfg.loss == "logistic", "validation")
        if Xv.shape[1] != X.shape[1]:
            raise DataError(f"validation X has {Xv.shape[1]} columns, training has {X.shape[1]}")
        val = _Objective(Xv, yv, cfg)
    d = X.shape[1]
    if theta0 is not None and np.shape(theta0) != (d + 1,):
        raise DataError(f"theta0 must have shape ({d + 1},) = [w, b], got {np.shape(theta0)}")
    t0 = np.zeros(d + 1) if theta0 is None else np.asarray(theta0, dtype=np.float64)
    w, b = t0[:-1].copy(), float(t0[-1])
    obj = _Objective(X, y, cfg)
    eta = auto_learning_rate(obj) if cfg.learning_rate == "auto" else cfg.learning_rate
    return _loop(obj, val, w, b, eta, rng, on_epoch)


def _loop(
    obj: _Objective,
    val: _Objective | None,
    w: FloatArray,
    b: float,
    eta: float,
    rng: np.random.Generator,
    on_epoch: EpochCallback | None,
) -> FitResult:
    cfg = obj.cfg
    full = cfg.batch_size is None or cfg.batch_size >= obj.X.shape[0]
    train_hist: list[float] = []
    val_hist: list[float] = []
    best_train, best_score = np.inf, np.inf
    best = (w, b, 0)
    stale, stopped = 0, False
    for epoch in range(cfg.epochs + 1):
        if full:
            loss, gw, gb = obj.value_and_grad(w, b)
        else:
            loss = obj.value(w, b)
        reason = _diverged(loss, best_train, epoch, cfg)
        if reason:
            _raise_divergence(reason, eta, cfg)
        best_train = min(best_train, loss)
        vloss = val.value(w, b) if val is not None else None
        train_hist.append(loss)
        if vloss is not None:
            val_hist.append(vloss)
        if on_epoch is not None:
            on_epoch(epoch, loss, vloss)
        score = vloss if vloss is not None else loss
        if score < best_score - cfg.min_delta * abs(best_score if np.isfinite(best_score) else 0):
            best_score, best, stale = score, (w, b, epoch), 0
        else:
            stale += 1
        if epoch == cfg.epochs:
            break
        if cfg.early_stopping_patience is not None and stale >= cfg.early_stopping_patience:
            stopped = True
            break
        if full:
            w, b = w - eta * gw, b - eta * gb
        else:
            w, b = _minibatch_epoch(obj, w, b, eta, rng)
    bw, bb, be = best if cfg.early_stopping_patience is not None else (w, b, len(train_hist) - 1)
    return FitResult(
        weights=np.asarray(bw, dtype=np.float64),
        bias=float(bb),
        train_loss=tuple(train_hist),
        val_loss=tuple(val_hist),
        best_epoch=int(be),
        epochs_run=len(train_hist) - 1,
        stopped_early=stopped,
    )
