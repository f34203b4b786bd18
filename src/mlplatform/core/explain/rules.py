"""The vocabulary of Anchor rules: predicates, per-feature conditions and rule sampling.

Numeric features are discretized by training quantiles: with edges e_1 < … < e_{b−1}
a row x gets one predicate per edge, "z_j ≤ e_k" when x_j ≤ e_k and "z_j > e_k"
otherwise, so every predicate holds for x. A categorical feature gets "z_j = x_j".
A rule is a set of predicates; on one feature they intersect into an interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from mlplatform.core.explain.types import BoolArray, FloatArray
from mlplatform.core.space import FeatureSpace


@dataclass(frozen=True)
class Predicate:
    """One test on one encoded feature: ``z[feature] op value``."""

    feature: int
    op: Literal["<=", ">", "="]
    value: float

    def holds(self, X: FloatArray) -> BoolArray:
        """(n,) whether each encoded row of X: (n, d) passes the test."""
        col = X[:, self.feature]
        if self.op == "<=":
            return np.asarray(col <= self.value)
        if self.op == ">":
            return np.asarray(col > self.value)
        return np.asarray(col == self.value)


@dataclass(frozen=True)
class Condition:
    """All predicates of a rule on one feature: low < z_j ≤ high, or z_j = code."""

    feature: int
    low: float = -np.inf
    high: float = np.inf
    code: float | None = None

    def holds(self, X: FloatArray) -> BoolArray:
        col = X[:, self.feature]
        if self.code is not None:
            return np.asarray(col == self.code)
        return np.asarray((col > self.low) & (col <= self.high))

    def describe(self, space: FeatureSpace) -> str:
        """``"income > 50,000,000 VND"``, ``"30 < age <= 45"`` or ``"region = north"``."""
        name, j = space.names[self.feature], self.feature
        if self.code is not None:
            return f"{name} = {space.format_value(j, self.code)}"
        low, high = space.format_value(j, self.low), space.format_value(j, self.high)
        if np.isfinite(self.low) and np.isfinite(self.high):
            return f"{low} < {name} <= {high}"
        return f"{name} > {low}" if np.isfinite(self.low) else f"{name} <= {high}"


def quantile_edges(background: FloatArray, space: FeatureSpace, bins: int) -> list[FloatArray]:
    """Per feature the distinct interior quantile edges (b − 1 at most); none for categoricals."""
    probs = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    out: list[FloatArray] = []
    for j in range(space.width):
        col = background[:, j]
        keep = np.unique(np.quantile(col, probs)) if j not in space.categorical else np.zeros(0)
        out.append(keep[keep < col.max()])
    return out


def candidate_predicates(
    x: FloatArray, edges: Sequence[FloatArray], categorical: Sequence[int]
) -> list[Predicate]:
    """Every predicate that holds for row x: (d,): one per numeric edge, one per category."""
    preds: list[Predicate] = []
    for j, e in enumerate(edges):
        preds.extend(Predicate(j, "<=" if x[j] <= v else ">", float(v)) for v in e)
    return preds + [Predicate(j, "=", float(x[j])) for j in categorical]


def to_conditions(preds: Sequence[Predicate]) -> tuple[Condition, ...]:
    """Intersect the predicates feature by feature, ordered by feature index."""
    merged: dict[int, Condition] = {}
    for p in preds:
        c = merged.get(p.feature, Condition(p.feature))
        if p.op == "=":
            c = Condition(p.feature, code=p.value)
        elif p.op == "<=":
            c = Condition(p.feature, c.low, min(c.high, p.value))
        else:
            c = Condition(p.feature, max(c.low, p.value), c.high)
        merged[p.feature] = c
    return tuple(merged[j] for j in sorted(merged))


def describe_rule(conditions: Sequence[Condition], space: FeatureSpace) -> str:
    """The conditions joined by AND, or ``"any input"`` for the empty rule."""
    return " AND ".join(c.describe(space) for c in conditions) or "any input"


@dataclass(frozen=True, eq=False)
class RuleSampler:
    """Draws z ~ D(·|rule) from background rows (n_bg, d), as the Anchors paper does.

    A sample is a random background row whose ruled features are each replaced by
    the value of another random background row that satisfies that feature's
    condition (features are conditioned independently); with no such row, x's value.
    """

    data: FloatArray
    sorted_cols: FloatArray

    @classmethod
    def from_background(cls, background: FloatArray) -> RuleSampler:
        return cls(background, np.sort(background, axis=0))

    def sample(
        self, conditions: Sequence[Condition], x: FloatArray, n: int, rng: np.random.Generator
    ) -> FloatArray:
        """(n, d) samples from D(·|conditions) around row x: (d,)."""
        Z = self.data[rng.integers(0, self.data.shape[0], n)]
        for c in conditions:
            col = self.sorted_cols[:, c.feature]
            if c.code is not None:
                start = np.searchsorted(col, c.code, side="left")
                end = np.searchsorted(col, c.code, side="right")
            else:
                start, end = np.searchsorted(col, [c.low, c.high], side="right")
            if end > start:
                Z[:, c.feature] = col[rng.integers(start, end, n)]
            else:
                Z[:, c.feature] = x[c.feature]
        return Z
