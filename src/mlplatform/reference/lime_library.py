"""The ``lime`` library's LimeTabularExplainer as the reference path of our LIME engine.

:class:`LimeReference` configures ``lime`` to compute what
:func:`mlplatform.core.explain.lime.lime_explain_batch` computes, and returns the same
:class:`~mlplatform.core.explain.lime.LimeExplanation`. None of our engine's LIME math is
used (only its output type and the target's reference row and bins, to package the
result): the sampling, kernel width, kernel and surrogate are ``lime``'s own.

* ``discretize_continuous=False, sample_around_instance=True``: numeric features are
  sampled as x + s·N(0, 1) with s the training standard deviation and distances are
  taken on standardized values, which is our neighbourhood;
* kernel width: ``cfg.kernel_width`` if set, else lime's default (lime computes it,
  0.75·sqrt(d)); the width lime used is read back from lime (``.width``);
* kernel: our engine's documented kernel π = exp(−d²/σ²) (README "Explain") is the square
  of lime's default kernel sqrt(exp(−d²/σ²)), so by default lime's own default kernel
  function is squared (:func:`lime_default_kernel`); ``squared_kernel=False`` leaves
  lime's kernel untouched (π = exp(−d²/2σ²));
* ``Ridge(alpha=cfg.ridge_alpha)`` as the surrogate, ``feature_selection`` mapped to
  lime's ``none`` / ``forward_selection`` / ``lasso_path``.

lime reports β per standard deviation; we divide by s_j to get β per normalized unit.
With ``discretize=True`` (lime's default, quartile bins) the coefficients are those of
lime's "in the same quartile as x" indicators, directly comparable with ours under
``representation="quartile"`` (same bins, same sampling, same inputs and intercept).
Contributions are read against ``cfg.reference``, as ours are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from lime.lime_tabular import LimeTabularExplainer
from sklearn.linear_model import Ridge

from mlplatform.config import ExplainConfig
from mlplatform.core.explain.lime import LimeExplanation
from mlplatform.core.explain.target import ExplainTarget
from mlplatform.core.explain.types import FloatArray

_SELECTION = {"none": "none", "forward": "forward_selection", "lasso": "lasso_path"}


Kernel = Callable[[FloatArray, float], FloatArray]


def lime_default_kernel() -> Kernel:
    """lime's default kernel function k(d, kernel_width), taken from a throwaway explainer."""
    probe = LimeTabularExplainer(np.eye(2), discretize_continuous=False)
    kernel: Kernel = probe.base.kernel_fn.func  # partial(kernel, kernel_width=...)
    return kernel


def squared(kernel: Kernel) -> Kernel:
    """d, σ -> kernel(d, σ)²: lime's exp(−d²/2σ²) becomes our exp(−d²/σ²)."""

    def square(d: FloatArray, kernel_width: float) -> FloatArray:
        return np.asarray(kernel(d, kernel_width), dtype=np.float64) ** 2

    return square


class LimeReference:
    """A ``lime`` explainer of ``target`` built once from its background rows (n_bg, d).

    ``squared_kernel``: lime's default kernel squared (our documented kernel) or as is.
    """

    def __init__(
        self,
        target: ExplainTarget,
        cfg: ExplainConfig,
        *,
        discretize: bool = False,
        seed: int = 0,
        squared_kernel: bool = True,
    ) -> None:
        space = target.space
        self.target, self.space, self.task = target, space, target.task
        self.cfg, self.discretize = cfg, discretize
        self.reference = target.reference(cfg.reference)
        self.explainer = LimeTabularExplainer(
            target.background,
            mode=target.task,
            feature_names=list(space.names),
            categorical_features=list(space.categorical),
            categorical_names={j: list(c) for j, c in space.categories.items()},
            kernel_width=cfg.kernel_width,  # None: lime's default
            kernel=squared(lime_default_kernel()) if squared_kernel else None,
            discretize_continuous=discretize,
            sample_around_instance=True,
            feature_selection=_SELECTION[cfg.feature_selection],
            random_state=seed,
        )
        self.width = float(self.explainer.base.kernel_fn.keywords["kernel_width"])

    def explain(self, x: FloatArray, target_class: int = 1) -> LimeExplanation:
        """Explain one encoded row x: (d,) with lime, in our units (module docstring)."""
        row = self.space.check(x, "row to explain")[0]
        label = 1 if self.task == "regression" else target_class
        exp = self.explainer.explain_instance(
            row,
            self._wrap(),
            labels=(label,),
            num_features=self.cfg.num_features,
            num_samples=self.cfg.num_samples,
            model_regressor=Ridge(alpha=self.cfg.ridge_alpha),
        )
        return self._convert(exp, row, label)

    def _wrap(self) -> Any:
        predict_fn = self.target.predict_fn
        if self.task == "regression":
            return predict_fn

        def proba(X: FloatArray) -> FloatArray:
            p = predict_fn(X)
            return np.column_stack([1.0 - p, p])

        return proba

    def _convert(self, exp: Any, row: FloatArray, label: int) -> LimeExplanation:
        """lime's Explanation in our units; f(x) is lime's own prediction for the row."""
        scaler = self.explainer.scaler
        per_unit = 1.0 if self.discretize else scaler.scale_
        coef = np.zeros(self.space.width)
        for j, b in exp.local_exp[label]:
            coef[j] = b
        coef = coef / per_unit
        shift = 0.0 if self.discretize else float(coef @ scaler.mean_)
        regression = self.task == "regression"
        fx = float(exp.predicted_value if regression else exp.predict_proba[label])
        used = [int(j) for j, _ in exp.local_exp[label]]
        return LimeExplanation(
            x=row.copy(),
            coefficients=coef,
            selected=tuple(sorted(used, key=lambda j: -abs(coef[j]))),
            intercept=float(exp.intercept[label]) - shift,
            local_prediction=float(np.ravel(exp.local_pred)[0]),
            model_prediction=fx,
            score_r2=float(exp.score),
            fidelity_loss=float("nan"),
            feature_names=self.space.names,
            feature_values=tuple(self.space.format_value(j, float(v)) for j, v in enumerate(row)),
            categorical=tuple(self.space.categorical),
            target_class=None if regression else label,
            kernel_width=self.width,
            num_samples=self.cfg.num_samples,
            reference=self.reference.row,
            reference_name=self.reference.name,
            reference_values=tuple(
                self.space.format_value(j, float(v)) for j, v in enumerate(self.reference.row)
            ),
            edges=self.target.quartiles.edges_by_column(row.size) if self.discretize else (),
        )
