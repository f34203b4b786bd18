"""A small regression tree (CART) used as the ante-hoc, readable global surrogate.

Each split minimizes the summed squared error of the two children,
SSE = Σ_left (y − ȳ_L)² + Σ_right (y − ȳ_R)², over numeric thresholds "z_j ≤ t" (t
halfway between neighbouring distinct values) and categorical tests "z_j = c" (one
category against the rest, which an ordinal split on codes cannot express).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlplatform.core.explain.rules import Condition
from mlplatform.core.explain.types import FloatArray, IntArray
from mlplatform.core.space import FeatureSpace


@dataclass(frozen=True)
class TreeNode:
    """A leaf (feature = −1) or a test sending rows left when it holds."""

    value: float
    n: int
    feature: int = -1
    threshold: float = float("nan")
    categorical: bool = False
    left: int = -1
    right: int = -1


@dataclass(frozen=True)
class SurrogateTree:
    """Nodes in depth-first order; node 0 is the root."""

    nodes: tuple[TreeNode, ...]

    def predict(self, X: FloatArray) -> FloatArray:
        """Leaf values (n,) for encoded rows X: (n, d)."""
        feat = np.array([max(nd.feature, 0) for nd in self.nodes])
        thr = np.array([nd.threshold for nd in self.nodes])
        cat = np.array([nd.categorical for nd in self.nodes])
        kids = np.array([[nd.left, nd.right] for nd in self.nodes])
        pos = np.zeros(X.shape[0], dtype=np.int64)
        for _ in range(len(self.nodes)):
            inner = kids[pos, 0] >= 0
            if not inner.any():
                break
            v = X[np.arange(X.shape[0]), feat[pos]]
            go_left = np.where(cat[pos], v == thr[pos], v <= thr[pos])
            pos = np.where(inner, np.where(go_left, kids[pos, 0], kids[pos, 1]), pos)
        return np.array([self.nodes[i].value for i in pos], dtype=np.float64)

    def rules(self, space: FeatureSpace, fmt: str = "{:,.3g}") -> tuple[str, ...]:
        """One ``IF … THEN value (n=…)`` line per leaf, tests merged per feature, original units."""
        out: list[str] = []
        self._walk(0, [], space, fmt, out)
        return tuple(out)

    def _walk(
        self, i: int, path: list[Test], space: FeatureSpace, fmt: str, out: list[str]
    ) -> None:
        nd = self.nodes[i]
        if nd.feature < 0:
            out.append(f"IF {describe_path(path, space)} THEN {fmt.format(nd.value)} (n={nd.n})")
            return
        self._walk(nd.left, [*path, (nd.feature, True, nd.threshold)], space, fmt, out)
        self._walk(nd.right, [*path, (nd.feature, False, nd.threshold)], space, fmt, out)


Test = tuple[int, bool, float]  # (feature, test held?, threshold or code)


def describe_path(path: list[Test], space: FeatureSpace) -> str:
    """The tests on a root-to-leaf path, one clause per feature (intervals, categories)."""
    clauses = []
    for j in dict.fromkeys(f for f, _, _ in path):
        tests = [(held, v) for f, held, v in path if f == j]
        if not space.is_categorical(j):
            low = max((v for held, v in tests if not held), default=-np.inf)
            high = min((v for held, v in tests if held), default=np.inf)
            clauses.append(Condition(j, low, high).describe(space))
            continue
        same = [v for held, v in tests if held]
        clauses.append(_category_clause(j, same[0] if same else None, tests, space))
    return " AND ".join(clauses) or "always"


def _category_clause(
    j: int, code: float | None, tests: list[tuple[bool, float]], space: FeatureSpace
) -> str:
    """``region = north``, or the categories the "≠" tests leave: ``region in {south, east}``."""
    if code is not None:
        return Condition(j, code=code).describe(space)
    excluded = {v for _, v in tests}
    left = [float(c) for c in range(len(space.categories[j])) if float(c) not in excluded]
    if len(left) == 1:
        return Condition(j, code=left[0]).describe(space)
    labels = ", ".join(space.format_value(j, c) for c in left)
    return f"{space.names[j]} in {{{labels}}}"


def fit_tree(
    X: FloatArray, y: FloatArray, space: FeatureSpace, max_depth: int = 3, min_leaf: int = 5
) -> SurrogateTree:
    """Greedy CART on X: (n, d), y: (n,) up to ``max_depth`` levels of tests."""
    nodes: list[TreeNode] = []
    _grow(X, y, np.arange(X.shape[0]), space, max_depth, min_leaf, nodes)
    return SurrogateTree(tuple(nodes))


def _grow(
    X: FloatArray,
    y: FloatArray,
    idx: IntArray,
    space: FeatureSpace,
    depth: int,
    min_leaf: int,
    nodes: list[TreeNode],
) -> int:
    """Append the subtree of rows ``idx`` to ``nodes``; return its root's index."""
    me = len(nodes)
    nodes.append(TreeNode(float(y[idx].mean()), int(idx.size)))
    split = _best_split(X[idx], y[idx], space, min_leaf) if depth > 0 else None
    if split is None:
        return me
    j, t, is_cat = split
    left = X[idx, j] == t if is_cat else X[idx, j] <= t
    li = _grow(X, y, idx[left], space, depth - 1, min_leaf, nodes)
    ri = _grow(X, y, idx[~left], space, depth - 1, min_leaf, nodes)
    nodes[me] = TreeNode(nodes[me].value, nodes[me].n, j, t, is_cat, li, ri)
    return me


def _best_split(
    X: FloatArray, y: FloatArray, space: FeatureSpace, min_leaf: int
) -> tuple[int, float, bool] | None:
    """(feature, threshold or code, categorical?) of the lowest-SSE split, or None."""
    best: tuple[float, int, float, bool] | None = None
    base = float(((y - y.mean()) ** 2).sum())
    for j in range(X.shape[1]):
        is_cat = space.is_categorical(j)
        found = (
            _categorical_split(X[:, j], y, min_leaf)
            if is_cat
            else _numeric_split(X[:, j], y, min_leaf)
        )
        if found is not None and found[0] < base - 1e-12 and (best is None or found[0] < best[0]):
            best = (found[0], j, found[1], is_cat)
    return None if best is None else (best[1], best[2], best[3])


def _numeric_split(x: FloatArray, y: FloatArray, min_leaf: int) -> tuple[float, float] | None:
    """(SSE, threshold) of the best "x ≤ t" split, by cumulative sums over sorted x."""
    order = np.argsort(x, kind="stable")
    xs, ys = x[order], y[order]
    n = xs.size
    nl = np.arange(1, n)
    s1, s2 = np.cumsum(ys)[:-1], np.cumsum(ys**2)[:-1]
    t1, t2 = ys.sum(), (ys**2).sum()
    sse = (s2 - s1**2 / nl) + ((t2 - s2) - (t1 - s1) ** 2 / (n - nl))
    ok = (xs[1:] > xs[:-1]) & (nl >= min_leaf) & (n - nl >= min_leaf)
    if not ok.any():
        return None
    i = int(np.argmin(np.where(ok, sse, np.inf)))
    return float(sse[i]), float((xs[i] + xs[i + 1]) / 2)


def _categorical_split(x: FloatArray, y: FloatArray, min_leaf: int) -> tuple[float, float] | None:
    """(SSE, code) of the best "x = c" against the rest."""
    best: tuple[float, float] | None = None
    for c in np.unique(x):
        m = x == c
        if min(m.sum(), (~m).sum()) < min_leaf:
            continue
        sse = float(((y[m] - y[m].mean()) ** 2).sum() + ((y[~m] - y[~m].mean()) ** 2).sum())
        if best is None or sse < best[0]:
            best = (sse, float(c))
    return best
