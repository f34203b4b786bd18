"""Explanation quality per row and per model (the article's four criteria).

Per row: LIME's local fidelity (loss and R² on a fresh neighbourhood, and the
surrogate's in-sample weighted R²), stability across seeds and under perturbation,
sparsity (features kept); the anchor's precision re-estimated on fresh samples from
D(·|rule), its coverage on the data, and its length. :class:`ModelQuality` averages
them over a sample of rows and flattens them into metrics a promotion gate can read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

from mlplatform.core.explain.anchor import AnchorExplanation
from mlplatform.core.explain.rules import RuleSampler
from mlplatform.core.explain.types import FloatArray, PredictFn, call_model


def rule_coverage(anchor: AnchorExplanation, data: FloatArray) -> float:
    """Share of encoded rows data: (n, d) that satisfy the anchor's rule."""
    ok = np.ones(data.shape[0], dtype=bool)
    for c in anchor.conditions:
        ok &= c.holds(data)
    return float(ok.mean())


def rule_precision(
    predict_fn: PredictFn,
    anchors: Sequence[AnchorExplanation],
    sampler: RuleSampler,
    num_samples: int,
    rng: np.random.Generator,
) -> FloatArray:
    """(k,) share of fresh z ~ D(·|rule) whose f(z) agrees with f(x), one model call."""
    Z = np.vstack([sampler.sample(a.conditions, a.x, num_samples, rng) for a in anchors])
    y = call_model(predict_fn, Z).reshape(len(anchors), num_samples)
    return np.array([a.agreement(y[i]).mean() for i, a in enumerate(anchors)], dtype=np.float64)


@dataclass(frozen=True)
class InstanceQuality:
    """Quality of one row's explanations; field names are the metric name stems."""

    lime_fidelity_loss: float
    lime_fidelity_r2: float
    lime_local_r2: float
    lime_stability_jaccard: float
    lime_coef_spread: float
    lime_perturbation_jaccard: float
    lime_perturbation_spread: float
    lime_sparsity: float
    anchor_precision: float
    anchor_coverage: float
    anchor_rule_length: float
    anchor_valid: float

    def as_dict(self) -> dict[str, float]:
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True)
class ModelQuality:
    """Per-row qualities of a sample of rows, aggregated by :meth:`as_metrics`."""

    rows: tuple[InstanceQuality, ...]

    def as_metrics(self) -> dict[str, float]:
        """Flat, stable snake_case metrics: ``<stem>_mean`` and ``<stem>_min`` per field.

        e.g. lime_fidelity_r2_mean, lime_stability_jaccard_mean, lime_sparsity_mean,
        anchor_precision_mean, anchor_coverage_mean, anchor_rule_length_mean,
        anchor_valid_mean (share of rows with a valid anchor), plus rows_explained.
        """
        out: dict[str, float] = {"rows_explained": float(len(self.rows))}
        for f in fields(InstanceQuality):
            values = np.array([getattr(q, f.name) for q in self.rows], dtype=np.float64)
            out[f"{f.name}_mean"] = float(values.mean()) if values.size else float("nan")
            out[f"{f.name}_min"] = float(values.min()) if values.size else float("nan")
        return out
