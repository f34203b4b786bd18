"""Anchor: the if-then rule that "anchors" a prediction (Ribeiro, Singh, Guestrin, AAAI 2018).

A rule A (see :mod:`.rules`) anchors f(x) when its precision

    prec(A) = P_{z ~ D(·|A)}[f(z) agrees with f(x)]

is at least τ with confidence 1 − δ, i.e. its KL lower bound (:mod:`.bandit`) is ≥ τ.
Beam search starts from the empty rule and adds one predicate per step; KL-LUCB keeps
the B candidates with the highest precision, each is sampled until its bound decides
τ, and of the rules that pass the one with the largest coverage P_{z ~ D}[A(z)] wins
(later candidates must beat that coverage). Every bandit round is one model call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlplatform.config import ExplainConfig
from mlplatform.core.explain.bandit import kl_lower, kl_upper, lucb_top
from mlplatform.core.explain.rules import (
    Condition,
    RuleSampler,
    candidate_predicates,
    describe_rule,
    quantile_edges,
    to_conditions,
)
from mlplatform.core.explain.target import ExplainTarget
from mlplatform.core.explain.types import BoolArray, FloatArray, IntArray, call_model, check_row

Rule = tuple[int, ...]  # sorted indices into the row's candidate predicates
_MAX_VERIFY_ROUNDS = 50  # batches per candidate while its bound straddles τ


@dataclass(frozen=True)
class Agreement:
    """Whether f(z) "agrees" with f(x) = ``prediction``.

    Regression: |f(z) − f(x)| ≤ ``tolerance``; classification: f(z) and f(x) fall on
    the same side of ``threshold`` (``tolerance`` is None).
    """

    prediction: float
    tolerance: float | None
    threshold: float = 0.5

    def __call__(self, y: FloatArray) -> BoolArray:
        if self.tolerance is not None:
            return np.asarray(np.abs(y - self.prediction) <= self.tolerance)
        return np.asarray((y >= self.threshold) == (self.prediction >= self.threshold))


@dataclass(frozen=True, eq=False)
class AnchorExplanation:
    """The anchor of one row x: (d,) with its precision, coverage and cost.

    ``valid`` is False when no rule up to ``anchor_max_length`` reached precision ≥ τ
    with confidence 1 − δ; the rule with the highest lower bound is returned then.
    """

    x: FloatArray
    conditions: tuple[Condition, ...]
    rule: str
    outcome: str
    precision: float
    precision_lower: float
    coverage: float
    length: int
    valid: bool
    agreement: Agreement
    num_samples: int
    model_calls: int

    def to_dict(self) -> dict[str, object]:
        """JSON-ready summary of the rule and its statistics."""
        return {
            "rule": self.rule,
            "outcome": self.outcome,
            "precision": self.precision,
            "precision_lower": self.precision_lower,
            "coverage": self.coverage,
            "length": self.length,
            "valid": self.valid,
            "text": str(self),
        }

    def __str__(self) -> str:
        return (
            f"{self.rule} → {self.outcome} "
            f"(precision {self.precision:.2f}, coverage {self.coverage:.2f})"
        )


@dataclass(frozen=True, eq=False)
class AnchorContext:
    """What every anchor of one target needs: sampler, bins, coverage rows, tolerance."""

    target: ExplainTarget
    cfg: ExplainConfig
    sampler: RuleSampler
    edges: tuple[FloatArray, ...]
    coverage_rows: FloatArray
    tolerance: float | None


def anchor_context(
    target: ExplainTarget, cfg: ExplainConfig, rng: np.random.Generator
) -> AnchorContext:
    """Prepare anchors over ``target.background``: quantile bins and coverage rows.

    Regression tolerance = ``cfg.anchor_regression_tolerance`` × sd of f(background).
    """
    B = target.background
    n_cov = min(cfg.coverage_samples, B.shape[0])
    cov_rows = B[rng.choice(B.shape[0], size=n_cov, replace=False)]
    tol = None
    if target.task == "regression":
        tol = cfg.anchor_regression_tolerance * float(np.std(call_model(target.predict_fn, B)))
    edges = tuple(quantile_edges(B, target.space, cfg.anchor_bins))
    return AnchorContext(target, cfg, RuleSampler.from_background(B), edges, cov_rows, tol)


def anchor_explain(
    target: ExplainTarget, x: FloatArray, cfg: ExplainConfig, rng: np.random.Generator
) -> AnchorExplanation:
    """The anchor of encoded row x: (d,) (module docstring)."""
    return anchor_explain_with(anchor_context(target, cfg, rng), x, rng)


def anchor_explain_with(
    ctx: AnchorContext, x: FloatArray, rng: np.random.Generator
) -> AnchorExplanation:
    """:func:`anchor_explain` reusing a prepared :class:`AnchorContext`."""
    target = ctx.target
    row = check_row(x, target.space)
    fx = float(call_model(target.predict_fn, row[None, :])[0])
    agree = Agreement(fx, ctx.tolerance, target.threshold)
    search = _Search(ctx, row, agree, rng)
    rule, valid = _beam_search(search, ctx.cfg)
    conds = to_conditions([search.preds[i] for i in rule])
    mean, lower, _ = search.bounds([rule], search.verify_level(ctx.cfg))
    return AnchorExplanation(
        x=row,
        conditions=conds,
        rule=describe_rule(conds, target.space),
        outcome=_outcome(agree, target.class_names),
        precision=float(mean[0]),
        precision_lower=float(lower[0]),
        coverage=search.coverage(rule),
        length=len(rule),
        valid=valid,
        agreement=agree,
        num_samples=search.samples,
        model_calls=search.calls + 1,
    )


def _outcome(agree: Agreement, class_names: tuple[str, str]) -> str:
    if agree.tolerance is not None:
        return f"prediction {agree.prediction:,.4g} ± {agree.tolerance:,.2g}"
    return class_names[int(agree.prediction >= agree.threshold)]


class _Search:
    """Bandit state of one row: per-rule sample counts, agreements and coverages."""

    def __init__(
        self, ctx: AnchorContext, x: FloatArray, agree: Agreement, rng: np.random.Generator
    ) -> None:
        self.ctx, self.x, self.agree, self.rng = ctx, x, agree, rng
        self.preds = candidate_predicates(x, ctx.edges, ctx.target.space.categorical)
        cols = [p.holds(ctx.coverage_rows) for p in self.preds]
        self.holds = np.column_stack(cols) if cols else np.ones((len(ctx.coverage_rows), 0), bool)
        self.n: dict[Rule, float] = {}
        self.pos: dict[Rule, float] = {}
        self.calls = self.samples = 0

    def coverage(self, rule: Rule) -> float:
        return float(self.holds[:, list(rule)].all(axis=1).mean()) if rule else 1.0

    def pull(self, rules: list[Rule], n: int) -> FloatArray:
        """Draw n samples from D(·|rule) for each rule, all in one model call."""
        if not rules:
            return np.zeros(0)
        Z = np.vstack([self.ctx.sampler.sample(self._conds(r), self.x, n, self.rng) for r in rules])
        y = call_model(self.ctx.target.predict_fn, Z)
        hits = self.agree(y).reshape(len(rules), n).sum(axis=1)
        for r, h in zip(rules, hits, strict=True):
            self.n[r] = self.n.get(r, 0.0) + n
            self.pos[r] = self.pos.get(r, 0.0) + float(h)
        self.calls += 1
        self.samples += Z.shape[0]
        return np.asarray(hits, dtype=np.float64)

    def _conds(self, rule: Rule) -> tuple[Condition, ...]:
        return to_conditions([self.preds[i] for i in rule])

    def extend(self, beam: list[Rule]) -> list[Rule]:
        """Each beam rule plus one predicate on a feature/direction it does not test yet."""
        out: set[Rule] = set()
        for rule in beam:
            used = {(self.preds[i].feature, self.preds[i].op) for i in rule}
            for i, p in enumerate(self.preds):
                if (p.feature, p.op) not in used:
                    out.add(tuple(sorted((*rule, i))))
        return sorted(out)

    def bounds(self, rules: list[Rule], beta: float) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Mean precision, KL lower and upper bounds (k,) at exploration level β."""
        n = np.array([self.n[r] for r in rules])
        mean = np.array([self.pos[r] for r in rules]) / n
        return mean, kl_lower(mean, beta / n), kl_upper(mean, beta / n)

    def verify_level(self, cfg: ExplainConfig) -> float:
        """β = log((1 + (B − 1)·P)/δ), a union bound over the candidates, as in ``anchor``."""
        return float(np.log((1 + (cfg.anchor_beam_size - 1) * len(self.preds)) / cfg.anchor_delta))

    def verify(self, rules: list[Rule], cfg: ExplainConfig) -> tuple[BoolArray, FloatArray]:
        """Sample until each rule's bounds decide τ: (passes, lower bound) per rule."""
        beta, tau = self.verify_level(cfg), cfg.anchor_threshold
        for _ in range(_MAX_VERIFY_ROUNDS):
            _, lower, upper = self.bounds(rules, beta)
            open_ = np.flatnonzero((lower < tau) & (upper >= tau))
            if open_.size == 0:
                break
            self.pull([rules[i] for i in open_], cfg.anchor_batch_size)
        _, lower, _ = self.bounds(rules, beta)
        return lower >= tau, lower

    def best(self, rules: list[Rule], cfg: ExplainConfig) -> list[Rule]:
        """KL-LUCB: the ``anchor_beam_size`` rules with the highest precision."""
        n = np.array([self.n[r] for r in rules])
        pos = np.array([self.pos[r] for r in rules])

        def pull(arms: IntArray) -> FloatArray:
            return self.pull([rules[i] for i in arms], cfg.anchor_batch_size)

        top = lucb_top(
            n,
            pos,
            cfg.anchor_beam_size,
            cfg.anchor_epsilon,
            cfg.anchor_delta,
            pull,
            cfg.anchor_batch_size,
        )
        return [rules[i] for i in top]


def _beam_search(s: _Search, cfg: ExplainConfig) -> tuple[Rule, bool]:
    """The widest-coverage rule that passes τ, or (highest lower bound, False)."""
    s.pull([()], cfg.anchor_batch_size)
    ok, lower = s.verify([()], cfg)
    if ok[0]:
        return (), True
    beam: list[Rule] = [()]
    best: Rule | None = None
    fallback, fallback_lb = beam[0], float(lower[0])
    for _ in range(cfg.anchor_max_length):
        best_cov = -1.0 if best is None else s.coverage(best)
        cands = [c for c in s.extend(beam) if s.coverage(c) > best_cov]
        if not cands:
            break
        s.pull([c for c in cands if c not in s.n], cfg.anchor_batch_size)
        beam = s.best(cands, cfg)
        ok, lower = s.verify(beam, cfg)
        for rule, passed, lb in zip(beam, ok, lower, strict=True):
            if passed and s.coverage(rule) > (-1.0 if best is None else s.coverage(best)):
                best = rule
            if lb > fallback_lb:
                fallback, fallback_lb = rule, float(lb)
    return (best, True) if best is not None else (fallback, False)
