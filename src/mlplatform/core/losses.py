"""Losses of a linear model and their analytic gradients with respect to the prediction.

With residual r = ŷ − y over N samples (for ``logistic``, ŷ is the logit z = Xθ
and y ∈ {0, 1}):

========  =====================================  ===============================
loss      L(ŷ, y)                                 ∂L/∂ŷᵢ
========  =====================================  ===============================
mse       (1/N) Σ rᵢ²                             (2/N) rᵢ
mae       (1/N) Σ |rᵢ|                            (1/N) sign(rᵢ)   (0 at rᵢ = 0)
huber     (1/N) Σ ½rᵢ² if |rᵢ| ≤ δ                (1/N) clip(rᵢ, −δ, δ)
                 else δ(|rᵢ| − ½δ)
logistic  (1/N) Σ log(1 + eᶻⁱ) − yᵢ zᵢ            (1/N) (σ(zᵢ) − yᵢ)
========  =====================================  ===============================

The gradient with respect to the weights is then Xᵀ ∂L/∂ŷ (chain rule), which is
the article's (2/N)·Xᵀ(ŷ − y) for MSE.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
LossName = Literal["mse", "mae", "huber", "logistic"]
LOSSES: tuple[LossName, ...] = ("mse", "mae", "huber", "logistic")


def sigmoid(z: FloatArray) -> FloatArray:
    """Numerically stable σ(z) = 1 / (1 + e^−z)."""
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


def loss_value(name: LossName, y_hat: FloatArray, y: FloatArray, delta: float = 1.0) -> float:
    """Mean loss L(ŷ, y); ``y_hat`` and ``y`` are (n,)."""
    r = y_hat - y
    if name == "mse":
        return float(np.dot(r, r) / r.size)
    if name == "mae":
        return float(np.abs(r).mean())
    if name == "huber":
        a = np.abs(r)
        return float(np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta)).mean())
    if name == "logistic":
        # log(1 + e^z) computed as logaddexp(0, z) to avoid overflow.
        return float((np.logaddexp(0.0, y_hat) - y * y_hat).mean())
    raise ValueError(f"unknown loss {name!r}; choose one of {LOSSES}")


def loss_grad(name: LossName, y_hat: FloatArray, y: FloatArray, delta: float = 1.0) -> FloatArray:
    """∂L/∂ŷ, shape (n,), already divided by N."""
    n = y.size
    if name == "mse":
        return (2.0 / n) * (y_hat - y)
    if name == "mae":
        return np.sign(y_hat - y) / n
    if name == "huber":
        return np.clip(y_hat - y, -delta, delta) / n
    if name == "logistic":
        return (sigmoid(y_hat) - y) / n
    raise ValueError(f"unknown loss {name!r}; choose one of {LOSSES}")
