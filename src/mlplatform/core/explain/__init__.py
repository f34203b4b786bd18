"""Explanations: LIME (local surrogate), Anchor (if-then rules), their quality, a global view.

Describe the model once as an :class:`ExplainTarget` (predict function, background rows,
feature space, task, class names, threshold), then start from :func:`explain_instance`
(one row) and :func:`explain_model` (a sample of rows, aggregated);
:func:`lime_explain_batch` explains many rows with one model call.
"""

from mlplatform.core.explain.anchor import AnchorExplanation, anchor_explain
from mlplatform.core.explain.entry import (
    InstanceExplanation,
    ModelExplanation,
    explain_instance,
    explain_model,
)
from mlplatform.core.explain.global_view import GlobalView, global_view
from mlplatform.core.explain.lime import LimeExplanation, lime_explain_batch
from mlplatform.core.explain.quality import InstanceQuality, ModelQuality
from mlplatform.core.explain.reference import Reference, describe, direction
from mlplatform.core.explain.target import ExplainTarget

__all__ = [
    "AnchorExplanation",
    "ExplainTarget",
    "GlobalView",
    "InstanceExplanation",
    "InstanceQuality",
    "LimeExplanation",
    "ModelExplanation",
    "ModelQuality",
    "Reference",
    "anchor_explain",
    "describe",
    "direction",
    "explain_instance",
    "explain_model",
    "global_view",
    "lime_explain_batch",
]
