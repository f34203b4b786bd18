"""Explanation quality: fidelity, stability, rule metrics, aggregation and the global view."""

from __future__ import annotations

import dataclasses
import doctest
import json

import numpy as np
import pytest
from sklearn.tree import DecisionTreeRegressor

import mlplatform.core.explain.target
from mlplatform.config import ExplainConfig
from mlplatform.core.explain import (
    ExplainTarget,
    explain_instance,
    explain_model,
    lime_explain_batch,
)
from mlplatform.core.explain.neighbourhood import summarize_background
from mlplatform.core.explain.stability import (
    coef_spread,
    jaccard,
    lime_fidelity,
    lime_stability,
    weighted_fidelity,
)
from mlplatform.core.explain.tree import fit_tree
from mlplatform.core.space import FeatureSpace
from mlplatform.errors import DataError, ExplanationError

CFG = ExplainConfig(
    num_samples=800, num_features=2, sample_rows=6, stability_seeds=3, coverage_samples=1000
)


@pytest.fixture
def space() -> FeatureSpace:
    return FeatureSpace(
        names=("income", "late_payments", "age", "noise", "region"),
        categorical=(4,),
        categories={4: ("north", "south", "east")},
        offset=np.array([10e6, 0.0, 18.0, 0.0, 0.0]),
        scale=np.array([90e6, 5.0, 60.0, 1.0, 1.0]),
        units={0: "VND"},
    )


@pytest.fixture
def background() -> np.ndarray:
    rng = np.random.default_rng(11)
    n = 1500
    return np.column_stack(
        [
            rng.random(n),
            rng.integers(0, 6, n) / 5,
            rng.random(n),
            rng.random(n),
            rng.integers(0, 3, n),
        ]
    )


def linear(X: np.ndarray) -> np.ndarray:
    return 3.0 * X[:, 0] - 2.0 * X[:, 1] + 0.1 * X[:, 2]


def logistic(X: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(4.0 * X[:, 0] - 3.0 * X[:, 1] + 0.8 * (X[:, 4] == 2) - 0.5)))


def test_wrong_surrogate_gets_low_fidelity(space, background):
    rng = np.random.default_rng(0)
    target = ExplainTarget(linear, background, space, "regression")
    good = lime_explain_batch(target, background[:4], CFG, rng)
    wrong = [dataclasses.replace(e, coefficients=-e.coefficients) for e in good]
    bg = summarize_background(background, space)
    fit_good = lime_fidelity(linear, good, bg, 1000, rng)
    fit_wrong = lime_fidelity(linear, wrong, bg, 1000, rng)
    for g, w in zip(fit_good, fit_wrong, strict=True):
        assert g.r2 > 0.99 and g.loss < 1e-3
        assert w.r2 < 0.0 and w.loss > 100 * g.loss


def test_weighted_fidelity_formula():
    f = np.array([1.0, 2.0, 3.0])
    w = np.array([1.0, 1.0, 2.0])
    fid = weighted_fidelity(f, f + 1.0, w)
    assert fid.loss == pytest.approx(1.0)
    # f̄_w = 9/4; SST = 1.25² + 0.25² + 2·0.75² = 2.75; SSE = 4
    assert fid.r2 == pytest.approx(1.0 - 4.0 / 2.75)
    assert weighted_fidelity(np.ones(3), np.ones(3), w).r2 == 1.0


def test_jaccard_and_spread():
    assert jaccard((0, 1), (1, 2)) == pytest.approx(1 / 3)
    assert jaccard((), ()) == 1.0
    assert coef_spread(np.tile([1.0, -2.0], (4, 1))) == 0.0
    # sd per feature (1, 0), |mean| per feature (2, 0): 0.5 / 1.0
    assert coef_spread(np.array([[1.0, 0.0], [3.0, 0.0]])) == pytest.approx(0.5)


def test_stable_model_keeps_high_jaccard_and_noise_does_not(space, background):
    X = background[:5]
    stable = lime_stability(
        ExplainTarget(linear, background, space, "regression"), X, CFG, np.random.default_rng(0)
    )
    assert all(s.jaccard == 1.0 and s.coef_spread < 0.1 for s in stable.seeds)
    assert all(s.jaccard == 1.0 for s in stable.perturbed)

    def noise(Z: np.ndarray) -> np.ndarray:
        return np.random.default_rng(Z.shape[0]).normal(size=Z.shape[0])

    shaky = lime_stability(
        ExplainTarget(noise, background, space, "regression"), X, CFG, np.random.default_rng(0)
    )
    assert np.mean([s.jaccard for s in shaky.seeds]) < 0.8
    assert np.mean([s.coef_spread for s in shaky.seeds]) > 0.3


def test_target_validates_once_and_its_examples_run(space, background):
    target = ExplainTarget(linear, background.tolist(), space, "regression")
    assert target.background.dtype == np.float64 and target.background.shape == background.shape
    np.testing.assert_array_equal(target.background_summary.data, background)
    with pytest.raises(DataError):
        ExplainTarget(linear, background[:, :3], space, "regression")
    with pytest.raises(ExplanationError, match="task"):
        ExplainTarget(linear, background, space, "ranking")
    assert doctest.testmod(mlplatform.core.explain.target).failed == 0


def test_explain_instance_bundles_lime_anchor_quality(space, background):
    target = ExplainTarget(logistic, background, space, "classification", ("reject", "approve"))
    ex = explain_instance(target, background[0], CFG, np.random.default_rng(0))
    q = ex.quality
    assert ex.lime.x.tolist() == background[0].tolist()
    assert ex.anchor.outcome in ("reject", "approve")
    assert q.lime_sparsity == 2 and q.anchor_rule_length == ex.anchor.length
    assert 0.0 <= q.anchor_precision <= 1.0
    # coverage: the share of background rows the rule holds for, counted here row by row
    # (plain comparisons, not Condition.holds)
    conditions = ex.anchor.conditions
    assert conditions  # a rule with at least one predicate: coverage below 1 is possible

    def covered(row: np.ndarray) -> bool:
        return all(
            row[c.feature] == c.code if c.code is not None else c.low < row[c.feature] <= c.high
            for c in conditions
        )

    expected = sum(covered(row) for row in background) / len(background)
    assert q.anchor_coverage == pytest.approx(expected, abs=1e-12)
    assert covered(background[0])  # the explained row satisfies its own anchor
    assert q.lime_fidelity_r2 > 0.5 and q.lime_stability_jaccard >= 0.5


def test_explain_model_metrics_are_flat_and_stable(space, background):
    target = ExplainTarget(logistic, background, space, "classification")
    model = explain_model(target, background, CFG, np.random.default_rng(0))
    metrics = model.as_metrics()
    assert len(model.instances) == CFG.sample_rows == metrics["rows_explained"]
    for key in (
        "lime_fidelity_r2_mean",
        "lime_stability_jaccard_mean",
        "lime_sparsity_mean",
        "anchor_precision_mean",
        "anchor_coverage_mean",
        "anchor_rule_length_mean",
        "global_tree_fidelity",
    ):
        assert np.isfinite(metrics[key]), key
    assert all(isinstance(v, float) for v in metrics.values())
    assert metrics["lime_sparsity_mean"] == 2.0 and metrics["anchor_precision_mean"] > 0.8
    assert json.loads(json.dumps(model.to_dict()))["metrics"] == metrics
    view = model.global_view
    assert [name for name, _ in view.ranking()[:2]] == ["income", "late_payments"]
    assert view.fidelity_metric == "accuracy" and view.tree_fidelity > 0.8


def test_tree_matches_sklearn_on_numeric_data(space, background):
    X, y = background[:, :4], linear(background[:, :4])
    space4 = FeatureSpace(names=space.names[:4])
    ours = fit_tree(X, y, space4, max_depth=3, min_leaf=5)
    ref = DecisionTreeRegressor(max_depth=3, min_samples_leaf=5).fit(X, y)
    np.testing.assert_allclose(ours.predict(X), ref.predict(X))


def test_tree_rules_read_as_if_then_with_categories(space, background):
    y = np.where(background[:, 4] == 1, 5.0, 0.0) + background[:, 0]
    tree = fit_tree(background, y, space, max_depth=2)
    rules = tree.rules(space)
    assert len(rules) == 4 and all(r.startswith("IF ") and " THEN " in r for r in rules)
    assert rules[0].startswith("IF region = south AND income <= ")
    assert "region in {north, east}" in rules[-1]
    assert tree.predict(background).shape == (background.shape[0],)


def test_quality_entry_points_validate_inputs(space, background):
    with pytest.raises(DataError):
        explain_model(
            ExplainTarget(logistic, background, space, "classification"),
            background[:, :3],
            CFG,
            np.random.default_rng(0),
        )
    with pytest.raises(ExplanationError):
        explain_instance(
            ExplainTarget(logistic, np.empty((0, 5)), space, "classification"),
            background[0],
            CFG,
            np.random.default_rng(0),
        )


def test_explain_instance_takes_one_row_and_summarizes(space, background):
    target = ExplainTarget(logistic, background, space, "classification", ("reject", "approve"))
    with pytest.raises(ExplanationError, match="one row"):
        explain_instance(target, background[:2], CFG, np.random.default_rng(0))
    ex = explain_instance(target, background[1], CFG, np.random.default_rng(0))
    text = ex.summary()
    assert text.startswith("f(x) = ") and "Anchor: " in text and "income = " in text
    doc = json.loads(json.dumps(ex.to_dict()))
    assert doc["anchor"]["rule"] == ex.anchor.rule and len(doc["lime"]["contributions"]) == 2


def test_regression_model_view_and_all_categorical_space():
    rng = np.random.default_rng(4)
    num = FeatureSpace(names=("u", "v"))
    X = rng.random((200, 2))
    model = explain_model(ExplainTarget(lambda Z: 2.0 * Z[:, 0], X, num, "regression"), X, CFG, rng)
    assert (
        model.global_view.fidelity_metric == "r2"
        and model.as_metrics()["global_tree_fidelity"] > 0.9
    )
    cats = FeatureSpace(
        names=("a", "b"), categorical=(0, 1), categories={0: ("x", "y"), 1: ("p", "q")}
    )
    C = rng.integers(0, 2, (100, 2)).astype(float)
    target = ExplainTarget(lambda Z: Z[:, 0] + 0.1 * Z[:, 1], C, cats, "regression")
    ex = explain_instance(target, C[0], CFG, rng)
    assert ex.lime.selected[0] == 0 and ex.anchor.conditions[0].feature == 0
