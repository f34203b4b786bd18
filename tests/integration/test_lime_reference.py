"""Our batched LIME against the ``lime`` library at equal settings (no discretization)."""

from __future__ import annotations

import numpy as np
import pytest

from mlplatform.config import ExplainConfig
from mlplatform.core.explain import ExplainTarget, lime_explain_batch
from mlplatform.core.space import FeatureSpace
from mlplatform.reference.lime_library import LimeReference

D = 8
ROWS = 12


@pytest.fixture(scope="module")
def space() -> FeatureSpace:
    return FeatureSpace(
        names=(*(f"x{j}" for j in range(D - 1)), "segment"),
        categorical=(D - 1,),
        categories={D - 1: ("a", "b", "c", "d")},
    )


@pytest.fixture(scope="module")
def background() -> np.ndarray:
    rng = np.random.default_rng(21)
    B = rng.beta(2.0, 2.0, size=(600, D))
    B[:, -1] = rng.choice(4, size=600, p=[0.4, 0.3, 0.2, 0.1])
    return B


WEIGHTS = np.array([2.5, -1.5, 1.0, 0.5, -2.0, 0.2, 0.0])


def classifier(X: np.ndarray) -> np.ndarray:
    z = X[:, : D - 1] @ WEIGHTS + 1.5 * X[:, 0] * X[:, 1] + 0.8 * (X[:, -1] == 1) - 0.8
    return 1.0 / (1.0 + np.exp(-z))


def regressor(X: np.ndarray) -> np.ndarray:
    return X[:, : D - 1] @ WEIGHTS + np.sin(3.0 * X[:, 2]) - 0.7 * (X[:, -1] == 3)


@pytest.mark.parametrize(
    ("task", "model"), [("classification", classifier), ("regression", regressor)]
)
def test_coefficients_agree_with_lime(space, background, task, model):
    cfg = ExplainConfig(num_samples=5000, feature_selection="none", num_features=D)
    rows = background[:ROWS]
    target = ExplainTarget(model, background, space, task)
    ours = lime_explain_batch(target, rows, cfg, np.random.default_rng(0))
    ref = LimeReference(target, cfg, seed=0)
    theirs = [ref.explain(x) for x in rows]
    a = np.stack([e.coefficients for e in ours])
    b = np.stack([e.coefficients for e in theirs])
    per_row = [np.corrcoef(a[i], b[i])[0, 1] for i in range(ROWS)]
    assert min(per_row) >= 0.99, per_row
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] >= 0.99
    for o, t in zip(ours, theirs, strict=True):
        assert o.local_prediction == pytest.approx(t.local_prediction, abs=0.05)
        assert o.intercept == pytest.approx(t.intercept, abs=0.15 * (1 + abs(t.intercept)))
        assert o.score_r2 == pytest.approx(t.score_r2, abs=0.05)


def test_forward_selection_picks_the_same_features(space, background):
    cfg = ExplainConfig(num_samples=5000, feature_selection="forward", num_features=3)
    rows = background[:8]
    target = ExplainTarget(classifier, background, space, "classification")
    ours = lime_explain_batch(target, rows, cfg, np.random.default_rng(1))
    ref = LimeReference(target, cfg, seed=1)
    same = [
        set(o.selected) == set(ref.explain(x).selected) for o, x in zip(ours, rows, strict=True)
    ]
    assert np.mean(same) >= 0.75


def test_discretized_reference_runs(space, background):
    cfg = ExplainConfig(num_samples=500, feature_selection="none", num_features=D)
    target = ExplainTarget(classifier, background, space, "classification")
    ref = LimeReference(target, cfg, discretize=True)
    e = ref.explain(background[0])
    assert e.coefficients.shape == (D,) and np.isfinite(e.coefficients).all()


QUARTILE_SEEDS = 6


@pytest.mark.parametrize(
    ("task", "model"), [("classification", classifier), ("regression", regressor)]
)
def test_quartile_representation_agrees_with_lime_discretized(space, background, task, model):
    """``representation="quartile"`` against lime's default (quartile bins), weight by weight.

    Both are random: each side is averaged over independent seeds and the gap must stay
    within 5 standard errors of the difference, the per-feature sd pooled over rows.
    """
    cfg = ExplainConfig(
        num_samples=5000, feature_selection="none", num_features=D, representation="quartile"
    )
    rows = background[:ROWS]
    target = ExplainTarget(model, background, space, task)
    ours = np.stack(
        [
            [
                e.coefficients
                for e in lime_explain_batch(target, rows, cfg, np.random.default_rng(s))
            ]
            for s in range(QUARTILE_SEEDS)
        ]
    )  # (S, R, d)
    refs = [LimeReference(target, cfg, discretize=True, seed=s) for s in range(QUARTILE_SEEDS)]
    theirs = np.stack([[ref.explain(x).coefficients for x in rows] for ref in refs])
    se = np.sqrt(
        (ours.var(axis=0, ddof=1).mean(axis=0) + theirs.var(axis=0, ddof=1).mean(axis=0))
        / QUARTILE_SEEDS
    )  # (d,)
    gap = np.abs(ours.mean(axis=0) - theirs.mean(axis=0))  # (R, d)
    assert np.all(gap <= 5 * se + 1e-9), (gap / se).max(axis=0)
    lime_row = refs[0].explain(rows[0])  # lime's surrogate, read through our bins
    assert lime_row.predict(rows[:1])[0] == pytest.approx(lime_row.local_prediction)
    assert lime_row.reference_prediction + lime_row.contribution_values.sum() == pytest.approx(
        lime_row.local_prediction
    )
