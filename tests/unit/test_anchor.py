"""Anchor: KL-LUCB bounds, rule vocabulary, and recovery of a known decision rule."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlplatform.config import ExplainConfig
from mlplatform.core.explain import ExplainTarget, anchor_explain
from mlplatform.core.explain.anchor import anchor_context, anchor_explain_with
from mlplatform.core.explain.bandit import (
    exploration_rate,
    kl_bernoulli,
    kl_lower,
    kl_upper,
    lucb_top,
)
from mlplatform.core.explain.quality import rule_coverage, rule_precision
from mlplatform.core.explain.rules import (
    Condition,
    Predicate,
    RuleSampler,
    candidate_predicates,
    quantile_edges,
    to_conditions,
)
from mlplatform.core.space import FeatureSpace
from mlplatform.errors import DataError, ExplanationError

# --- KL bounds ---------------------------------------------------------------------------

probs = st.floats(0.0, 1.0, allow_nan=False)
levels = st.floats(1e-4, 5.0, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(p=probs, level=levels)
def test_bounds_bracket_the_estimate(p, level):
    lo, hi = float(kl_lower(p, level)), float(kl_upper(p, level))
    assert 0.0 <= lo <= p <= hi <= 1.0


@settings(max_examples=200, deadline=None)
@given(p=probs, level=levels, factor=st.floats(1.5, 100.0))
def test_bounds_tighten_with_more_samples(p, level, factor):
    # level = β/n: n × factor samples divide the level by factor
    assert kl_upper(p, level / factor) <= kl_upper(p, level) + 1e-12
    assert kl_lower(p, level / factor) >= kl_lower(p, level) - 1e-12


@settings(max_examples=100, deadline=None)
@given(p=st.floats(0.01, 0.95), level=st.floats(1e-3, 0.5))
def test_upper_bound_sits_on_the_kl_level(p, level):
    hi = float(kl_upper(p, level))
    if hi < 1.0:
        assert float(kl_bernoulli(p, hi)) >= level  # never underestimated ...
        assert float(kl_bernoulli(p, hi - 1e-5)) <= level  # ... and tight


def test_kl_bernoulli_basics():
    assert float(kl_bernoulli(0.3, 0.3)) == pytest.approx(0.0, abs=1e-12)
    assert float(kl_bernoulli(1.0, 0.5)) == pytest.approx(np.log(2.0))
    assert exploration_rate(10, 5, 0.05) > exploration_rate(10, 1, 0.05)


def test_lucb_finds_the_best_arms():
    rng = np.random.default_rng(0)
    p = np.array([0.5, 0.9, 0.6, 0.97, 0.7])
    n = np.full(5, 50.0)
    pos = rng.binomial(50, p).astype(float)
    top = lucb_top(n, pos, 2, 0.05, 0.05, lambda arms: rng.binomial(50, p[arms]).astype(float), 50)
    assert set(top.tolist()) == {1, 3}


# --- rule vocabulary ----------------------------------------------------------------------


@pytest.fixture
def space() -> FeatureSpace:
    return FeatureSpace(
        names=("income", "late_payments", "age", "region"),
        categorical=(3,),
        categories={3: ("north", "south", "east")},
        offset=np.array([10e6, 0.0, 18.0, 0.0]),
        scale=np.array([90e6, 5.0, 60.0, 1.0]),
        units={0: "VND", 2: "years"},
    )


@pytest.fixture
def background() -> np.ndarray:
    rng = np.random.default_rng(5)
    n = 2000
    return np.column_stack(
        [rng.random(n), rng.integers(0, 6, n) / 5, rng.random(n), rng.integers(0, 3, n)]
    )


def test_candidate_predicates_hold_for_the_row(space, background):
    edges = quantile_edges(background, space, 4)
    assert len(edges[0]) == 3 and len(edges[3]) == 0
    for x in background[:20]:
        for p in candidate_predicates(x, edges, space.categorical):
            assert p.holds(x[None, :])[0]


def test_conditions_merge_predicates_and_read_in_original_units(space):
    preds = [
        Predicate(0, ">", 0.25),
        Predicate(0, "<=", 0.5),
        Predicate(0, ">", 0.1),
        Predicate(3, "=", 1.0),
    ]
    conds = to_conditions(preds)
    assert conds == (Condition(0, 0.25, 0.5), Condition(3, code=1.0))
    assert conds[0].describe(space) == "32,500,000 VND < income <= 55,000,000 VND"
    assert conds[1].describe(space) == "region = south"
    assert Condition(2, low=0.5).describe(space) == "age > 48 years"


def test_rule_sampler_respects_the_conditions(background):
    sampler = RuleSampler.from_background(background)
    conds = (Condition(0, 0.25, 0.5), Condition(3, code=2.0))
    Z = sampler.sample(conds, background[0], 500, np.random.default_rng(0))
    assert np.all((Z[:, 0] > 0.25) & (Z[:, 0] <= 0.5) & (Z[:, 3] == 2.0))
    assert len(np.unique(Z[:, 2])) > 100  # free features keep their spread


# --- the known rule: reject when income <= median AND late payments >= 2 ------------------


def credit_model(background: np.ndarray):
    cut = float(np.quantile(background[:, 0], 0.5))

    def p_approve(X: np.ndarray) -> np.ndarray:
        reject = (X[:, 0] <= cut) & (X[:, 1] >= 0.4 - 1e-9)
        return np.where(reject, 0.1, 0.9)

    return p_approve


CFG = ExplainConfig(coverage_samples=2000)


def test_anchor_recovers_the_known_rule(space, background):
    f = credit_model(background)
    rng = np.random.default_rng(0)
    names = ("reject", "approve")
    ctx = anchor_context(ExplainTarget(f, background, space, "classification", names), CFG, rng)
    rejected = background[(background[:, 0] < 0.3) & (background[:, 1] >= 0.6)][:3]
    anchors = [anchor_explain_with(ctx, x, rng) for x in rejected]
    fresh = rule_precision(f, anchors, ctx.sampler, 2000, rng)
    for a, p in zip(anchors, fresh, strict=True):
        assert a.valid and a.outcome == "reject"
        assert {c.feature for c in a.conditions} == {0, 1}
        assert p >= CFG.anchor_threshold and a.precision_lower >= CFG.anchor_threshold
        assert str(a).startswith("income <= ") and "→ reject (precision 1.00" in str(a)
        assert rule_coverage(a, background) == pytest.approx(a.coverage, abs=0.03)


def test_approved_row_gets_the_widest_rule(space, background):
    f = credit_model(background)
    x = background[(background[:, 0] > 0.8) & (background[:, 1] >= 0.6)][0]
    target = ExplainTarget(f, background, space, "classification", ("reject", "approve"))
    a = anchor_explain(target, x, CFG, np.random.default_rng(1))
    assert a.valid and a.outcome == "approve"
    assert a.rule.startswith("income > ") and a.length == 1
    assert a.coverage == pytest.approx(0.5, abs=0.05)


def test_constant_model_is_anchored_by_the_empty_rule(space, background):
    constant = ExplainTarget(
        lambda X: np.full(X.shape[0], 0.8), background, space, "classification"
    )
    a = anchor_explain(constant, background[0], CFG, np.random.default_rng(0))
    assert a.rule == "any input" and a.coverage == 1.0 and a.valid and a.length == 0


def test_regression_anchor_pins_the_driving_feature(space, background):
    cut = float(np.quantile(background[:, 2], 0.5))  # on a bin edge, so a rule can be exact
    f = lambda X: 100.0 * (X[:, 2] > cut) + X[:, 0]  # noqa: E731
    x = background[background[:, 2] > 0.9][0]
    a = anchor_explain(
        ExplainTarget(f, background, space, "regression"), x, CFG, np.random.default_rng(2)
    )
    assert a.valid and [c.feature for c in a.conditions] == [2]
    assert a.outcome.startswith("prediction ") and "±" in a.outcome


def test_each_bandit_round_is_one_model_call(space, background):
    sizes: list[int] = []
    base = credit_model(background)

    def f(X: np.ndarray) -> np.ndarray:
        sizes.append(X.shape[0])
        return base(X)

    x = background[(background[:, 0] < 0.3) & (background[:, 1] >= 0.6)][0]
    target = ExplainTarget(f, background, space, "classification")
    a = anchor_explain(target, x, CFG, np.random.default_rng(3))
    assert a.model_calls == len(sizes) and a.num_samples == sum(sizes) - 1  # minus f(x)
    assert all(s % CFG.anchor_batch_size == 0 for s in sizes[1:])


def test_anchor_input_errors(space, background):
    f = credit_model(background)
    target = ExplainTarget(f, background, space, "classification")
    with pytest.raises(DataError):
        anchor_explain(target, np.full(4, np.nan), CFG, np.random.default_rng(0))
    with pytest.raises(ExplanationError, match="background is empty"):
        anchor_explain(
            ExplainTarget(f, background[:0], space, "classification"),
            background[0],
            CFG,
            np.random.default_rng(0),
        )
    with pytest.raises(ExplanationError, match="class_names"):
        anchor_explain(
            ExplainTarget(f, background, space, "classification", ("only",)),
            background[0],
            CFG,
            np.random.default_rng(0),
        )
