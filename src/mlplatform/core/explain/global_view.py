"""The model-wide view: mean |c| and mean |β| per feature, and a readable depth-3 tree.

* Post-hoc: importance_j = mean over explained rows of |c_j| (how much feature j moves
  predictions away from the reference, :mod:`.reference`) and of |β_j| (the slopes).
* Ante-hoc alternative: a regression tree of depth ≤ 3 fitted to the model's own
  predictions f(background); its fidelity is R² against f (regression) or the share of
  rows where tree and model pick the same class (classification), on the background.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from mlplatform.core.explain.lime import LimeExplanation
from mlplatform.core.explain.target import ExplainTarget
from mlplatform.core.explain.tree import SurrogateTree, fit_tree
from mlplatform.core.explain.types import FloatArray, Task, call_model


@dataclass(frozen=True, eq=False)
class GlobalView:
    """Feature importances (d,) and the surrogate tree with its fidelity."""

    feature_names: tuple[str, ...]
    mean_abs_coef: FloatArray
    tree: SurrogateTree
    tree_rules: tuple[str, ...]
    tree_fidelity: float
    fidelity_metric: Literal["r2", "accuracy"]
    mean_abs_contribution: FloatArray
    reference_name: str = "the reference row"

    def ranking(self, by: Literal["slope", "contribution"] = "slope") -> list[tuple[str, float]]:
        """(feature, mean |β|) or (feature, mean |c|), most important first."""
        values = self.mean_abs_coef if by == "slope" else self.mean_abs_contribution
        order = np.argsort(-values, kind="stable")
        return [(self.feature_names[j], float(values[j])) for j in order]


def global_view(
    target: ExplainTarget, explanations: Sequence[LimeExplanation], *, max_depth: int = 3
) -> GlobalView:
    """Importances from ``explanations`` and a tree fitted on the background rows (n_bg, d)."""
    importance = np.mean(np.stack([np.abs(e.coefficients) for e in explanations]), axis=0)
    moved = np.mean(np.stack([np.abs(e.contribution_values) for e in explanations]), axis=0)
    B, space = target.background, target.space
    y = call_model(target.predict_fn, B)
    tree = fit_tree(B, y, space, max_depth=max_depth, min_leaf=_min_leaf(y.size))
    fidelity, metric = tree_fidelity(tree.predict(B), y, target.task, target.threshold)
    rules = tree.rules(space)
    ref = explanations[0].reference_name if explanations else "the reference row"
    return GlobalView(space.names, importance, tree, rules, fidelity, metric, moved, ref)


def tree_fidelity(
    t: FloatArray, f: FloatArray, task: Task, threshold: float = 0.5
) -> tuple[float, Literal["r2", "accuracy"]]:
    """R² of tree outputs t (n,) against model outputs f (n,), or class agreement."""
    if task == "classification":
        return float(np.mean((t >= threshold) == (f >= threshold))), "accuracy"
    sst = float(np.sum((f - f.mean()) ** 2))
    sse = float(np.sum((f - t) ** 2))
    return (1.0 - sse / sst if sst > 0 else float(sse == 0.0)), "r2"


def _min_leaf(n: int) -> int:
    """Leaves hold at least 1% of the rows (5 at least) so the rules stay general."""
    return max(5, n // 100)
