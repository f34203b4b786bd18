"""Every loss's analytic gradient against central finite differences (property tests)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mlplatform.config import TrainConfig
from mlplatform.core.gd import _Objective
from mlplatform.core.losses import loss_grad, loss_value, sigmoid


def _problem(seed: int, loss: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(12, 3))
    y = (rng.random(12) < 0.5).astype(float) if loss == "logistic" else rng.normal(size=12)
    theta = rng.normal(size=4)
    return X, y, theta


def _fd_grad(obj: _Objective, theta: np.ndarray, h: float = 1e-6) -> np.ndarray:
    g = np.zeros_like(theta)
    for i in range(theta.size):
        e = np.zeros_like(theta)
        e[i] = h
        g[i] = (
            obj.value((theta + e)[:-1], (theta + e)[-1])
            - obj.value((theta - e)[:-1], (theta - e)[-1])
        ) / (2 * h)
    return g


def _nonsmooth_near(
    loss: str, X: np.ndarray, y: np.ndarray, theta: np.ndarray, delta: float
) -> bool:
    """MAE and Huber have kinks; finite differences across a kink are meaningless."""
    r = X @ theta[:-1] + theta[-1] - y
    if loss == "mae":
        return bool(np.min(np.abs(r)) < 1e-3)
    if loss == "huber":
        return bool(np.min(np.abs(np.abs(r) - delta)) < 1e-3)
    return False


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    loss=st.sampled_from(["mse", "mae", "huber", "logistic"]),
    l2=st.sampled_from([0.0, 0.1, 1.0]),
    delta=st.floats(0.2, 2.0),
)
def test_objective_gradient_matches_finite_differences(
    seed: int, loss: str, l2: float, delta: float
) -> None:
    X, y, theta = _problem(seed, loss)
    if _nonsmooth_near(loss, X, y, theta, delta):
        return
    cfg = TrainConfig(loss=loss, l2=l2, huber_delta=delta)  # type: ignore[arg-type]
    obj = _Objective(X, y, cfg)
    _, gw, gb = obj.value_and_grad(theta[:-1], float(theta[-1]))
    np.testing.assert_allclose(np.append(gw, gb), _fd_grad(obj, theta), rtol=1e-5, atol=1e-7)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), l2=st.sampled_from([0.0, 0.5]))
def test_gram_cache_gives_same_value_and_gradient(seed: int, l2: float) -> None:
    X, y, theta = _problem(seed, "mse")
    plain = _Objective(X, y, TrainConfig(loss="mse", l2=l2))
    cached = _Objective(X, y, TrainConfig(loss="mse", l2=l2, cache_gram=True))
    a, b = plain.value_and_grad(theta[:-1], theta[-1]), cached.value_and_grad(theta[:-1], theta[-1])
    assert np.isclose(a[0], b[0], rtol=1e-10)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-9, atol=1e-12)
    assert np.isclose(a[2], b[2], rtol=1e-9, atol=1e-12)


def test_mae_subgradient_is_zero_at_zero_residual() -> None:
    y = np.array([1.0, 2.0, 3.0])
    assert np.all(loss_grad("mae", y.copy(), y) == 0)


def test_huber_is_quadratic_inside_linear_outside() -> None:
    y = np.zeros(1)
    assert loss_value("huber", np.array([0.5]), y, delta=1.0) == 0.125
    assert loss_value("huber", np.array([3.0]), y, delta=1.0) == 2.5


def test_sigmoid_is_stable_for_large_logits() -> None:
    z = np.array([-1000.0, 0.0, 1000.0])
    np.testing.assert_allclose(sigmoid(z), [0.0, 0.5, 1.0])
    assert np.isfinite(loss_value("logistic", z, np.array([1.0, 0.0, 0.0])))
