"""Anchor's guarantee on a noisy model: an accepted rule has precision ≥ τ w.p. ≥ 1 − δ.

The model predicts "high" when z_0 > its median, then flips its answer at random with a
rate set by z_1's quartile: 7 %, 7 %, 11 %, 3 %. For a row whose own prediction was not
flipped, a rule that pins z_0's side of the median has precision 0.97 if it also pins z_1
to its top quartile, and at most 0.93 otherwise (z_1 in the top half: 1 − (11 + 3)/2 %);
a rule that leaves z_0's side open stays below 0.7. So τ = 0.95 sits between the two
levels, only rows with z_1 in its top quartile have an anchor, and a precision estimate
from 20,000 fresh samples (sd ≈ 0.002) cannot mistake one level for the other.

The oracle is this file's own sampler of D(·|rule) (rules.RuleSampler's distribution: a
background row whose ruled features are redrawn, each on its own, from the background
values inside the rule), the model called afresh and plain numpy masks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from mlplatform.config import ExplainConfig
from mlplatform.core.explain import ExplainTarget
from mlplatform.core.explain.anchor import (
    AnchorExplanation,
    anchor_context,
    anchor_explain_with,
)
from mlplatform.core.explain.bandit import kl_bernoulli
from mlplatform.core.space import FeatureSpace

CFG = ExplainConfig(coverage_samples=2000, anchor_max_length=3)
TAU, DELTA = CFG.anchor_threshold, CFG.anchor_delta
FLIP_BY_QUARTILE = np.array([0.07, 0.07, 0.11, 0.03])
FLIP_STRADDLING = np.full(4, 0.055)  # every rule: precision 0.945 or below
FRESH = 20_000
N_ANCHORED, N_UNANCHORED = 36, 12


@dataclass(frozen=True)
class NoisyModel:
    """P(high) of rows (n, 3): 0.9 or 0.1, flipped at random at z_1's quartile rate."""

    median0: float
    quartiles1: np.ndarray  # z_1's three inner quartile edges
    flip: np.ndarray  # (4,) flip rate per quartile of z_1
    rng: np.random.Generator

    def __call__(self, Z: np.ndarray) -> np.ndarray:
        rate = self.flip[np.searchsorted(self.quartiles1, Z[:, 1], side="left")]
        high = (Z[:, 0] > self.median0) ^ (self.rng.random(Z.shape[0]) < rate)
        return np.where(high, 0.9, 0.1)


def noisy_target(rng: np.random.Generator, flip: np.ndarray) -> ExplainTarget:
    """2,000 uniform background rows and a :class:`NoisyModel` with its own generator."""
    background = rng.random((2000, 3))
    q1 = np.quantile(background[:, 1], [0.25, 0.5, 0.75])  # the engine's bin edges too
    f = NoisyModel(float(np.quantile(background[:, 0], 0.5)), q1, flip, np.random.default_rng(11))
    space = FeatureSpace(names=("z0", "z1", "z2"))
    return ExplainTarget(f, background, space, "classification", ("low", "high"))


@dataclass(frozen=True)
class Scenario:
    model: NoisyModel
    background: np.ndarray
    anchored: list[AnchorExplanation]  # rows with z_1 in its top quartile
    unanchored: list[AnchorExplanation]  # rows with z_1 below it: no rule reaches τ
    fresh_anchored: np.ndarray
    fresh_unanchored: np.ndarray


def fresh_precision(
    f: Callable[[np.ndarray], np.ndarray],
    background: np.ndarray,
    a: AnchorExplanation,
    rng: np.random.Generator,
) -> float:
    """Share of FRESH samples z ~ D(·|rule) whose class is the anchor's outcome."""
    Z = background[rng.integers(0, background.shape[0], FRESH)]
    for c in a.conditions:
        col = background[:, c.feature]
        Z[:, c.feature] = rng.choice(col[(col > c.low) & (col <= c.high)], FRESH)
    return float(np.mean((f(Z) >= 0.5) == (a.outcome == "high")))


def draw_rows(rng: np.random.Generator, z1_low: float, z1_high: float, n: int) -> np.ndarray:
    """n uniform rows (n, 3) with z_1 uniform in [z1_low, z1_high]."""
    X = rng.random((n, 3))
    X[:, 1] = z1_low + (z1_high - z1_low) * X[:, 1]
    return X


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    rng = np.random.default_rng(7)
    target = noisy_target(rng, FLIP_BY_QUARTILE)
    f, background = target.predict_fn, target.background
    assert isinstance(f, NoisyModel)
    ctx = anchor_context(target, CFG, rng)
    q1_top = f.quartiles1[2]
    top = [anchor_explain_with(ctx, x, rng) for x in draw_rows(rng, q1_top, 1.0, N_ANCHORED)]
    rest = [anchor_explain_with(ctx, x, rng) for x in draw_rows(rng, 0.0, q1_top, N_UNANCHORED)]
    fresh = [np.array([fresh_precision(f, background, a, rng) for a in s]) for s in (top, rest)]
    return Scenario(f, background, top, rest, fresh[0], fresh[1])


def binomial_allowance(n: int, p: float, alpha: float = 1e-3) -> int:
    """The smallest k with P(Binomial(n, p) > k) ≤ alpha."""
    cdf = 0.0
    for k in range(n + 1):
        cdf += math.comb(n, k) * p**k * (1 - p) ** (n - k)
        if 1.0 - cdf <= alpha:
            return k
    return n


def test_accepted_rules_keep_precision_tau_on_fresh_samples(scenario):
    """A failure is an accepted rule below τ on fresh samples; at most δ of them, give or take."""
    valid = [a.valid for a in scenario.anchored] + [a.valid for a in scenario.unanchored]
    fresh = np.concatenate([scenario.fresh_anchored, scenario.fresh_unanchored])[valid]
    assert fresh.size >= 0.8 * N_ANCHORED  # not vacuous
    failures = int(np.sum(fresh < TAU))
    assert failures <= binomial_allowance(len(fresh), DELTA), (failures, len(fresh))


def test_anchors_are_found_where_they_exist(scenario):
    """The 0.97 rules (z_0's side AND z_1 in its top quartile) are certified, nothing looser."""
    valid = [a for a in scenario.anchored if a.valid]
    assert len(valid) >= 0.8 * N_ANCHORED  # a row's own flip (3 %) leaves it without one
    fresh = scenario.fresh_anchored[[a.valid for a in scenario.anchored]]
    assert np.all(np.abs(fresh - 0.97) < 0.01), fresh  # the 0.97 rules, not looser ones
    q1_top = scenario.model.quartiles1[2]
    for a in valid:
        z1 = [c for c in a.conditions if c.feature == 1]
        assert len(z1) == 1 and z1[0].low == pytest.approx(q1_top), a.rule
        assert a.precision_lower >= TAU and a.coverage < 0.2


def test_no_anchor_is_reported_as_such_when_none_meets_tau(scenario):
    """Rows whose rules all stay at 0.93 or below get valid=False and a bound below τ."""
    unanchored = scenario.unanchored
    wrongly_valid = sum(a.valid for a in unanchored)
    assert wrongly_valid <= binomial_allowance(N_UNANCHORED, DELTA)
    for a, fresh in zip(unanchored, scenario.fresh_unanchored, strict=True):
        if not a.valid:
            assert a.precision_lower < TAU and fresh < TAU
            assert a.to_dict()["valid"] is False
            assert a.precision_lower < fresh + 0.02  # the bound does not overstate the rule


def test_lower_bound_is_at_the_documented_confidence_level(scenario):
    """precision_lower = min{q : n·KL(p̂‖q) ≤ β}, β = log((1 + (B − 1)·P)/δ), P = 9 predicates.

    n (the rule's samples) is not reported; it is a multiple of the batch size, so some
    such n must put the reported (p̂, lower) exactly on the KL level β.
    """
    predicates = 9  # 3 numeric features x 3 inner quartile edges
    beta = math.log((1 + (CFG.anchor_beam_size - 1) * predicates) / DELTA)
    batch = CFG.anchor_batch_size
    for a in [a for a in scenario.anchored if a.valid]:
        n = np.arange(batch, a.num_samples + 1, batch, dtype=np.float64)
        on_grid = np.abs(n * a.precision - np.round(n * a.precision)) < 1e-6
        level = n * kl_bernoulli(a.precision, a.precision_lower)
        assert np.any(on_grid & (np.abs(level / beta - 1.0) < 2e-3)), a


def test_a_rule_the_bandit_cannot_decide_is_not_accepted():
    """Precision 0.945: the bound still straddles τ when verification stops (50 batches).

    Its mean lands above τ about as often as below: accepting on the mean would pass it.
    """
    rng = np.random.default_rng(3)
    target = noisy_target(rng, FLIP_STRADDLING)
    cfg = ExplainConfig(coverage_samples=2000, anchor_max_length=2)
    ctx = anchor_context(target, cfg, rng)
    anchors = [anchor_explain_with(ctx, x, rng) for x in rng.random((10, 3))]
    assert sum(a.valid for a in anchors) <= binomial_allowance(len(anchors), DELTA)
    for a in anchors:
        assert a.valid == (a.precision_lower >= TAU), a
        assert fresh_precision(target.predict_fn, target.background, a, rng) < TAU
