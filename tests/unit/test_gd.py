from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from mlplatform.config import TrainConfig
from mlplatform.core.gd import fit
from mlplatform.errors import DataError, DivergenceError
from mlplatform.stages.examples import ARTICLE_X, ARTICLE_Y, article_example


def _ridge_closed_form(X: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    """argmin (1/N)‖Aθ − y‖² + λ‖w‖² with A = [X 1], bias unpenalized."""
    n, d = X.shape
    A = np.hstack([X, np.ones((n, 1))])
    P = np.diag([lam] * d + [0.0])
    return np.linalg.solve(A.T @ A / n + P, A.T @ y / n)


def _regression(seed: int = 0, n: int = 500, d: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 1, size=(n, d))
    y = X @ rng.normal(size=d) + 0.5 + rng.normal(0, 0.1, n)
    return X, y


@pytest.mark.parametrize("cache", [False, True])
def test_mse_l2_converges_to_closed_form_ridge(cache: bool) -> None:
    X, y = _regression()
    lam = 0.01
    cfg = TrainConfig(
        loss="mse",
        learning_rate=0.3,
        epochs=20_000,
        l2=lam,
        early_stopping_patience=None,
        cache_gram=cache,
    )
    theta = fit(X, y, cfg, np.random.default_rng(0)).theta
    exact = _ridge_closed_form(X, y, lam)
    assert np.linalg.norm(theta - exact) / np.linalg.norm(exact) < 1e-6


def test_logistic_lands_near_sklearn() -> None:
    rng = np.random.default_rng(1)
    X = rng.uniform(0, 1, size=(800, 4))
    p = 1 / (1 + np.exp(-(X @ np.array([3.0, -2.0, 1.0, 0.0]) - 0.5)))
    y = (rng.random(800) < p).astype(float)
    lam = 0.001
    cfg = TrainConfig(
        loss="logistic", learning_rate=2.0, epochs=20_000, l2=lam, early_stopping_patience=None
    )
    ours = fit(X, y, cfg, np.random.default_rng(0))
    # sklearn minimizes ½‖w‖² + C Σ logloss; dividing by C·N gives ours with λ = 1/(2CN).
    ref = LogisticRegression(C=1 / (2 * lam * len(y)), tol=1e-10, max_iter=10_000).fit(X, y)
    np.testing.assert_allclose(ours.weights, ref.coef_[0], rtol=1e-4, atol=1e-5)
    assert ours.bias == pytest.approx(ref.intercept_[0], abs=1e-5)


def test_article_example_reproduces_the_articles_loop() -> None:
    X = np.hstack([ARTICLE_X, np.ones((4, 1))])
    y = ARTICLE_Y[:, None]
    theta = np.array([[0.049], [-0.34]])
    for _ in range(1000):
        theta -= 0.01 * (2 / 4) * X.T @ (X @ theta - y)
    result = article_example()
    np.testing.assert_allclose(result.theta, theta[:, 0], rtol=1e-12)
    assert result.weights[0] == pytest.approx(1.352437, abs=1e-6)
    assert result.bias == pytest.approx(-0.283301, abs=1e-6)
    assert len(result.train_loss) == 1001
    assert result.train_loss[-1] < result.train_loss[0]


@pytest.mark.parametrize("loss", ["mse", "huber", "logistic"])
def test_auto_learning_rate_converges_without_tuning(loss: str) -> None:
    X, y = _regression(6, d=20)
    y = (y > np.median(y)).astype(float) if loss == "logistic" else y
    cfg = TrainConfig(loss=loss, learning_rate="auto", epochs=3000, early_stopping_patience=None)  # type: ignore[arg-type]
    r = fit(X * 7.0, y, cfg, np.random.default_rng(0))  # unnormalized scale: auto adapts
    assert r.train_loss[-1] < 0.5 * r.train_loss[0]
    assert all(b <= a + 1e-12 for a, b in zip(r.train_loss, r.train_loss[1:], strict=False))


def test_minibatch_with_shuffling_converges_and_is_seeded() -> None:
    X, y = _regression(2)
    cfg = TrainConfig(
        loss="mse", learning_rate=0.05, epochs=300, batch_size=32, early_stopping_patience=None
    )
    a = fit(X, y, cfg, np.random.default_rng(5))
    b = fit(X, y, cfg, np.random.default_rng(5))
    np.testing.assert_array_equal(a.theta, b.theta)
    exact = _ridge_closed_form(X, y, 0.0)
    assert np.abs(a.theta - exact).max() < 0.05


def test_early_stopping_returns_best_validation_epoch() -> None:
    X, y = _regression(3, n=60, d=20)  # few rows, many features: overfits
    Xv, yv = _regression(4, n=200, d=20)
    cfg = TrainConfig(loss="mse", learning_rate=0.1, epochs=5000, early_stopping_patience=30)
    r = fit(X, y, cfg, np.random.default_rng(0), X_val=Xv, y_val=yv)
    assert r.stopped_early
    assert r.epochs_run == r.best_epoch + 30
    assert r.val_loss[r.best_epoch] == min(r.val_loss)


def test_divergence_gives_a_clear_error() -> None:
    X, y = _regression()
    cfg = TrainConfig(loss="mse", learning_rate=50.0, epochs=100)
    with pytest.raises(DivergenceError, match="smaller learning rate.*normalize"):
        fit(X * 1000, y, cfg, np.random.default_rng(0))


@pytest.mark.parametrize(
    ("X", "y", "message"),
    [
        (np.zeros((0, 2)), np.zeros(0), "empty"),
        (np.zeros(4), np.zeros(4), "2-D"),
        (np.zeros((4, 2)), np.zeros(3), "1-D with 4 rows"),
        (np.array([[1.0, np.nan], [1.0, 2.0]]), np.zeros(2), "NaN"),
        (np.ones((3, 1)), np.array([0.0, 1.0, 2.0]), "must be 0 or 1"),
    ],
)
def test_bad_inputs_raise_data_error(X: np.ndarray, y: np.ndarray, message: str) -> None:
    loss = "logistic" if message == "must be 0 or 1" else "mse"
    with pytest.raises(DataError, match=message):
        fit(X, y, TrainConfig(loss=loss), np.random.default_rng(0))  # type: ignore[arg-type]


def test_non_numeric_input_is_a_data_error() -> None:
    with pytest.raises(DataError, match="must be numeric"):
        fit(
            np.array([["a"], ["b"]]), np.zeros(2), TrainConfig(loss="mse"), np.random.default_rng(0)
        )
