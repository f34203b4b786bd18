"""Explanations: LIME (local surrogate), Anchor (if-then rules), their quality, a global view.

Start from :func:`explain_instance` (one row) and :func:`explain_model` (a sample of rows,
aggregated); :func:`lime_explain_batch` explains many rows with one model call.
"""

from mlplatform.core.explain.anchor import AnchorExplanation, anchor_explain
from mlplatform.core.explain.explainer import (
    InstanceExplanation,
    ModelExplanation,
    explain_instance,
    explain_model,
)
from mlplatform.core.explain.global_view import GlobalView, global_view
from mlplatform.core.explain.lime import LimeExplanation, lime_explain_batch
from mlplatform.core.explain.quality import InstanceQuality, ModelQuality

__all__ = [
    "AnchorExplanation",
    "GlobalView",
    "InstanceExplanation",
    "InstanceQuality",
    "LimeExplanation",
    "ModelExplanation",
    "ModelQuality",
    "anchor_explain",
    "explain_instance",
    "explain_model",
    "global_view",
    "lime_explain_batch",
]
