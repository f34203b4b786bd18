"""Entry points: explain one row (LIME + Anchor + quality) or a model (aggregate + global).

>>> target = explain_target(cfg, model)   # mlplatform.core.training: an ExplainTarget
>>> ex = explain_instance(target, x, cfg.explain, np.random.default_rng(0))
>>> print(ex.anchor)   # income > 50,000,000 VND AND ... → approve (precision 0.97, ...)
>>> explain_model(target, rows, cfg.explain, rng).as_metrics()["lime_fidelity_r2_mean"]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlplatform.config import ExplainConfig
from mlplatform.core.explain.anchor import AnchorExplanation, anchor_context, anchor_explain_with
from mlplatform.core.explain.global_view import GlobalView, global_view
from mlplatform.core.explain.lime import LimeExplanation
from mlplatform.core.explain.quality import (
    InstanceQuality,
    ModelQuality,
    rule_coverage,
    rule_precision,
)
from mlplatform.core.explain.reference import describe
from mlplatform.core.explain.stability import Fidelity, Stability, lime_fidelity, lime_stability
from mlplatform.core.explain.target import ExplainTarget
from mlplatform.core.explain.types import FloatArray, Task, check_row, check_rows


@dataclass(frozen=True, eq=False)
class InstanceExplanation:
    """Both explanations of one row and their quality."""

    task: Task
    lime: LimeExplanation
    anchor: AnchorExplanation
    quality: InstanceQuality

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: ``{"lime": …, "anchor": …, "quality": …}`` (e.g. a served response)."""
        return {
            "lime": self.lime.to_dict(),
            "anchor": self.anchor.to_dict(),
            "quality": self.quality.as_dict(),
        }

    def summary(self, top: int = 5) -> str:
        """A few lines for a terminal: predictions, top contributions, the rule."""
        lime = self.lime
        lines = [
            f"f(x) = {lime.model_prediction:.4g}   LIME g(x) = {lime.local_prediction:.4g} "
            f"(weighted R² {lime.score_r2:.3f})",
            f"What pulls this prediction up or down, compared with {lime.reference_name} "
            f"(g = {lime.reference_prediction:.4g}):",
        ]
        ref = lime.reference_name
        lines += [f"  {c + 0.0:+.4g}  {describe(k, c, ref)}" for k, c in lime.contributions()[:top]]
        slopes = ", ".join(f"{k} {b:+.3g}" for k, b in lime.slopes()[:top])
        unit = "per normalized unit" if lime.representation == "continuous" else "in x's bin"
        lines.append(f"Slopes β ({unit}): {slopes}")
        valid = "" if self.anchor.valid else "  [precision target not reached]"
        lines.append(f"Anchor: {self.anchor}{valid}")
        return "\n".join(lines)


@dataclass(frozen=True, eq=False)
class ModelExplanation:
    """Explanations of a sample of rows, their aggregate quality and the global view."""

    task: Task
    instances: tuple[InstanceExplanation, ...]
    quality: ModelQuality
    global_view: GlobalView

    def as_metrics(self) -> dict[str, float]:
        """:meth:`ModelQuality.as_metrics` plus ``global_tree_fidelity``."""
        return {**self.quality.as_metrics(), "global_tree_fidelity": self.global_view.tree_fidelity}

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: metrics, importances (mean |β| and mean |c|, with the reference they
        compare with), the tree's rules and every explained row."""
        view = self.global_view
        return {
            "metrics": self.as_metrics(),
            "importance": dict(view.ranking()),
            "importance_contribution": dict(view.ranking("contribution")),
            "reference": view.reference_name,
            "tree_rules": list(view.tree_rules),
            "tree_fidelity": {view.fidelity_metric: view.tree_fidelity},
            "instances": [i.to_dict() for i in self.instances],
        }


def explain_instance(
    target: ExplainTarget, x: FloatArray, cfg: ExplainConfig, rng: np.random.Generator
) -> InstanceExplanation:
    """LIME, Anchor and quality of one encoded row x: (d,) of ``target``.

    Raises DataError for an invalid row (width, NaN, unknown code) and ExplanationError
    for more than one row or ``cfg.num_features`` > d.
    """
    X = check_rows(check_row(x, target.space), target.space, cfg)
    return explain_rows(target, X, cfg, rng)[0]


def explain_model(
    target: ExplainTarget, rows: FloatArray, cfg: ExplainConfig, rng: np.random.Generator
) -> ModelExplanation:
    """Explain ``cfg.sample_rows`` rows drawn from rows: (n, d); aggregate and global view."""
    X = check_rows(rows, target.space, cfg)
    if X.shape[0] > cfg.sample_rows:
        X = X[np.sort(rng.choice(X.shape[0], size=cfg.sample_rows, replace=False))]
    inst = explain_rows(target, X, cfg, rng)
    view = global_view(target, [i.lime for i in inst])
    return ModelExplanation(target.task, inst, ModelQuality(tuple(i.quality for i in inst)), view)


def explain_rows(
    target: ExplainTarget, X: FloatArray, cfg: ExplainConfig, rng: np.random.Generator
) -> tuple[InstanceExplanation, ...]:
    """Explain validated rows X: (R, d) of ``target``.

    LIME with its stability runs is one model call, fidelity one, the anchors' fresh
    precision one; each anchor search batches its bandit rounds.
    """
    run = lime_stability(target, X, cfg, rng)
    quartiles = target.quartiles if cfg.representation == "quartile" else None
    bg = target.background_summary
    fid = lime_fidelity(target.predict_fn, run.base, bg, cfg.num_samples, rng, quartiles)
    ctx = anchor_context(target, cfg, rng)
    anchors = [anchor_explain_with(ctx, x, rng) for x in X]
    prec = rule_precision(target.predict_fn, anchors, ctx.sampler, cfg.coverage_samples, rng)
    return tuple(
        InstanceExplanation(
            target.task,
            run.base[r],
            anchors[r],
            _quality(
                run.base[r],
                fid[r],
                run.seeds[r],
                run.perturbed[r],
                anchors[r],
                float(prec[r]),
                rule_coverage(anchors[r], target.background),
            ),
        )
        for r in range(X.shape[0])
    )


def _quality(
    lime: LimeExplanation,
    fid: Fidelity,
    seeds: Stability,
    noise: Stability,
    anchor: AnchorExplanation,
    precision: float,
    coverage: float,
) -> InstanceQuality:
    return InstanceQuality(
        lime_fidelity_loss=fid.loss,
        lime_fidelity_r2=fid.r2,
        lime_local_r2=lime.score_r2,
        lime_stability_jaccard=seeds.jaccard,
        lime_coef_spread=seeds.coef_spread,
        lime_perturbation_jaccard=noise.jaccard,
        lime_perturbation_spread=noise.coef_spread,
        lime_sparsity=float(len(lime.selected)),
        anchor_precision=precision,
        anchor_coverage=coverage,
        anchor_rule_length=float(anchor.length),
        anchor_valid=float(anchor.valid),
    )
