"""LIME engine: recovers known weights, batches model calls, validates its inputs."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from mlplatform.config import ExplainConfig
from mlplatform.core.explain import ExplainTarget, LimeExplanation, lime_explain_batch
from mlplatform.core.explain.surrogate import (
    forward_select,
    lasso_select,
    ridge_fit,
    shared_moments,
    weighted_moments,
    weighted_r2,
)
from mlplatform.core.space import FeatureSpace
from mlplatform.errors import DataError, ExplanationError

W = np.array([2.0, -1.0, 0.5, 0.0, 3.0])  # true weights per normalized unit
CAT_EFFECT = 0.7  # added when the categorical column holds code 1


@pytest.fixture
def space() -> FeatureSpace:
    return FeatureSpace(
        names=("income", "debt", "age", "noise", "tenure", "region"),
        categorical=(5,),
        categories={5: ("north", "south", "east")},
    )


@pytest.fixture
def background() -> np.ndarray:
    rng = np.random.default_rng(1)
    B = rng.random((400, 6))
    B[:, 5] = rng.integers(0, 3, 400)
    return B


def linear(X: np.ndarray) -> np.ndarray:
    return X[:, :5] @ W + CAT_EFFECT * (X[:, 5] == 1) + 1.5


def logistic(X: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(linear(X) - 3.5)))


def cfg(**kw: object) -> ExplainConfig:
    base: dict[str, object] = {"num_samples": 2000, "feature_selection": "none"}
    return ExplainConfig.model_validate({**base, **kw})


def explain(space, background, f=linear, task="regression", rows=None, seed=0, **kw):
    X = background[:5] if rows is None else rows
    rng = np.random.default_rng(seed)
    return lime_explain_batch(ExplainTarget(f, background, space, task), X, cfg(**kw), rng)


def test_recovers_linear_weights_in_normalized_space(space, background):
    rows = background[background[:, 5] == 1][:5]  # f is then linear in 1[z_5 = x_5] too
    for e in explain(space, background, rows=rows):
        # ridge on ~500 effective samples shrinks by ~0.2%: 2% of the largest weight is ample
        np.testing.assert_allclose(e.coefficients[:5], W, atol=0.02 * np.abs(W).max())
        assert e.local_prediction == pytest.approx(e.model_prediction, abs=0.02)
        assert e.score_r2 > 0.999
        assert e.fidelity_loss < 1e-3


def test_intercept_is_g_at_zero_for_all_numeric_model(space, background):
    e = explain(space, background, rows=background[background[:, 5] == 1][:1])[0]
    assert e.coefficients[5] == pytest.approx(CAT_EFFECT, abs=0.02)  # keeping code 1 adds 0.7
    assert e.intercept == pytest.approx(1.5, abs=0.05)


def test_classification_explains_probability_of_chosen_class(space, background):
    p1 = explain(space, background, f=logistic, task="classification")
    p0 = lime_explain_batch(
        ExplainTarget(logistic, background, space, "classification"),
        background[:5],
        cfg(),
        np.random.default_rng(0),
        target_class=0,
    )
    for a, b in zip(p1, p0, strict=True):
        assert np.sign(a.coefficients[[0, 1, 4]]).tolist() == [1.0, -1.0, 1.0]
        np.testing.assert_allclose(a.coefficients, -b.coefficients, atol=1e-9)
        assert a.model_prediction == pytest.approx(1.0 - b.model_prediction)
        assert a.local_prediction == pytest.approx(a.model_prediction, abs=0.05)


@pytest.mark.parametrize("method", ["forward", "lasso"])
def test_sparse_surrogate_keeps_the_strong_features(space, background, method):
    for e in explain(space, background, feature_selection=method, num_features=2):
        assert set(e.selected) == {0, 4}  # |w| = 2 and 3 dominate
        assert np.count_nonzero(e.coefficients) == 2
        assert e.top_features(1) == (4,)


def test_many_rows_cost_one_model_call(space, background):
    calls: list[int] = []

    def counted(X: np.ndarray) -> np.ndarray:
        calls.append(X.shape[0])
        return linear(X)

    out = explain(space, background, f=counted, rows=background[:12], num_samples=300)
    assert len(out) == 12 and calls == [12 * 300]


def test_same_seed_same_explanation(space, background):
    a, b = explain(space, background, seed=7), explain(space, background, seed=7)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.coefficients, y.coefficients)


def test_explanation_reads_in_original_units(space, background):
    e: LimeExplanation = explain(space, background)[0]
    label, beta = e.slopes()[0]
    assert label.startswith("tenure = ") and beta == pytest.approx(3.0, abs=0.1)
    assert e.predict(e.x[None, :])[0] == pytest.approx(e.local_prediction)
    assert e.feature_values[5] in space.categories[5]


@pytest.mark.parametrize(
    ("rows", "error"),
    [
        (np.zeros((2, 5)), DataError),  # wrong width
        (np.full((1, 6), np.nan), DataError),
        (np.array([[0.1, 0.2, 0.3, 0.4, 0.5, 7.0]]), DataError),  # unknown category code
    ],
)
def test_bad_rows_raise_data_error(space, background, rows, error):
    with pytest.raises(error):
        explain(space, background, rows=rows)


def test_empty_background_and_too_many_features_raise(space, background):
    with pytest.raises(ExplanationError, match="background is empty"):
        lime_explain_batch(
            ExplainTarget(linear, background[:0], space, "regression"),
            background[:1],
            cfg(),
            np.random.default_rng(0),
        )
    with pytest.raises(ExplanationError, match="num_features"):
        explain(space, background, num_features=7)


def test_predict_fn_with_wrong_output_shape_raises(space, background):
    with pytest.raises(ExplanationError, match="predict_fn"):
        explain(space, background, f=lambda X: np.zeros((X.shape[0], 2)))


# --- common random numbers: one noise draw shared by the rows of a batch -----------------


def _coefs(explanations) -> np.ndarray:
    return np.stack([e.coefficients for e in explanations])


@pytest.mark.parametrize("method", ["none", "forward", "lasso"])
def test_shared_noise_batch_equals_each_row_explained_alone(space, background, method):
    """The shared draw does not depend on the batch size: one seed, one ε for any batch."""
    rows = background[:8]  # several region codes: several shared designs
    kw = {"f": logistic, "task": "classification", "seed": 3, "feature_selection": method}
    batch = explain(space, background, rows=rows, num_features=3, **kw)
    for r, e in enumerate(batch):
        alone = explain(space, background, rows=rows[r : r + 1], num_features=3, **kw)[0]
        np.testing.assert_allclose(e.coefficients, alone.coefficients, rtol=0, atol=1e-8)
        assert e.selected == alone.selected
        assert e.intercept == pytest.approx(alone.intercept, abs=1e-8)
        assert e.score_r2 == pytest.approx(alone.score_r2, abs=1e-8)


def test_shared_noise_single_row_equals_independent_noise(space, background):
    """Both samplers draw the same ε for one row, so one-row explanations coincide."""
    rows, rng = background[2:3], np.random.default_rng
    target = ExplainTarget(logistic, background, space, "regression")
    shared = lime_explain_batch(target, rows, cfg(), rng(5))
    alone = lime_explain_batch(target, rows, cfg(), rng(5), shared_noise=False)
    np.testing.assert_allclose(shared[0].coefficients, alone[0].coefficients, rtol=0, atol=1e-8)


def test_numeric_rows_share_one_design_and_keep_their_own_targets():
    """f = x₀x₁ has gradient (x₁, x₀) at x: each row of a batch must recover its own."""
    rng = np.random.default_rng(4)
    B = rng.random((400, 3))
    numeric = FeatureSpace(names=("a", "b", "c"))
    rows = np.array([[0.1, 0.9, 0.5], [0.9, 0.1, 0.5], [0.5, 0.5, 0.5]])

    def product(Z: np.ndarray) -> np.ndarray:
        return Z[:, 0] * Z[:, 1]

    def run(X: np.ndarray) -> np.ndarray:
        c = cfg(num_features=3)
        target = ExplainTarget(product, B, numeric, "regression")
        return _coefs(lime_explain_batch(target, X, c, rng))

    coefs = run(rows)
    np.testing.assert_allclose(coefs[:, :2], rows[:, [1, 0]], atol=0.03)
    assert np.abs(coefs[0] - coefs[1]).max() > 0.5  # not one shared answer
    alone = np.concatenate([run(x[None]) for x in rows])
    assert np.abs(coefs - alone).max() < 0.05  # other ε, same answer


def test_seeds_draw_different_noise_and_duplicates_need_independent_noise(space, background):
    rows = np.repeat(background[:1], 3, axis=0)
    same = explain(space, background, f=logistic, task="classification", rows=rows, seed=0)
    other = explain(space, background, f=logistic, task="classification", rows=rows, seed=1)
    assert np.ptp(_coefs(same), axis=0).max() < 1e-12  # duplicates share the neighbourhood
    assert np.abs(_coefs(same) - _coefs(other)).max() > 1e-4  # a new seed, a new ε
    indep = lime_explain_batch(
        ExplainTarget(logistic, background, space, "classification"),
        rows,
        cfg(),
        np.random.default_rng(0),
        shared_noise=False,
    )
    assert np.ptp(_coefs(indep), axis=0).max() > 1e-4


def test_shared_moments_match_per_neighbourhood_moments():
    U, y, w = _problem()
    shared = shared_moments(U[0], y, w[0])
    each = weighted_moments(np.repeat(U[:1], 4, axis=0), y, np.repeat(w[:1], 4, axis=0))
    for name in ("gram", "cross", "sst", "u_mean", "y_mean", "weight_sum", "y_first"):
        np.testing.assert_allclose(getattr(shared, name), getattr(each, name), rtol=1e-9, atol=1e-9)
    mask = np.ones((4, 5), dtype=bool)
    for a, b in zip(ridge_fit(shared, mask, 2.0), ridge_fit(each, mask, 2.0), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


# --- the batched surrogate algebra against sklearn and brute force ----------------------


def _problem(seed: int = 3, R: int = 4, N: int = 300, d: int = 5):
    rng = np.random.default_rng(seed)
    U = rng.normal(size=(R, N, d))
    y = U @ rng.normal(size=d) + rng.normal(scale=0.3, size=(R, N))
    return U, y, rng.random((R, N))


def test_ridge_fit_matches_sklearn_weighted_ridge():
    U, y, w = _problem()
    m = weighted_moments(U, y, w)
    mask = np.ones((4, 5), dtype=bool)
    mask[1, [0, 3]] = False
    coef, b0 = ridge_fit(m, mask, alpha=2.0)
    for r in range(4):
        cols = np.flatnonzero(mask[r])
        ref = Ridge(alpha=2.0).fit(U[r][:, cols], y[r], sample_weight=w[r])
        np.testing.assert_allclose(coef[r, cols], ref.coef_, rtol=1e-8)
        assert b0[r] == pytest.approx(ref.intercept_)
        assert weighted_r2(m, coef)[r] == pytest.approx(
            ref.score(U[r][:, cols], y[r], sample_weight=w[r])
        )
        assert np.all(coef[r, ~mask[r]] == 0)


def test_forward_selection_matches_brute_force_greedy():
    U, y, w = _problem(R=3)
    m = weighted_moments(U, y, w)
    mask = forward_select(m, 3)
    for r in range(3):
        chosen: list[int] = []
        for _ in range(3):
            scores = {
                j: Ridge(alpha=0.0)
                .fit(U[r][:, [*chosen, j]], y[r], sample_weight=w[r])
                .score(U[r][:, [*chosen, j]], y[r], sample_weight=w[r])
                for j in range(5)
                if j not in chosen
            }
            chosen.append(max(scores, key=scores.__getitem__))
        assert set(np.flatnonzero(mask[r])) == set(chosen)


def test_lasso_selection_respects_k():
    U, y, w = _problem(R=3)
    mask = lasso_select(weighted_moments(U, y, w), 2)
    assert np.all((mask.sum(axis=1) >= 1) & (mask.sum(axis=1) <= 2))


def test_core_explain_imports_no_framework():
    code = (
        "import sys, mlplatform.core.explain; "
        "bad = {'sklearn','lime','kfp','kserve','feast','mlflow','evidently','dvc'}; "
        "print(sorted(bad & {m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
