"""Decoding logged bodies into feature rows and predictions (KServe v1 and Open Inference v2)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from mlplatform.serving.payloads.records import COLUMNS


def _loads(text: str | None) -> Any:
    if not text:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


def _v2_rows(tensors: list[Any]) -> list[Any] | None:
    """Rows of an OIP v2 ``inputs``/``outputs`` list: one tensor of shape (n, d) → n rows of d
    values ((n,) or (n, 1) → n scalars); several tensors → one dict per row keyed by name."""
    try:
        arrays = {t["name"]: np.asarray(t["data"]).reshape(t["shape"]) for t in tensors}
        cols = {k: a.reshape(a.shape[0], -1) for k, a in arrays.items()}
    except (KeyError, TypeError, ValueError, IndexError):
        return None
    if len(cols) == 1:
        (a,) = cols.values()
        rows: list[Any] = (a[:, 0] if a.shape[1] == 1 else a).tolist()
        return rows
    n = min(a.shape[0] for a in cols.values())
    return [{k: a[i, 0].item() for k, a in cols.items()} for i in range(n)]


def decode_instances(text: str | None) -> list[Any] | None:
    """The instances of a v1 (``instances``) or v2 (``inputs``) request body, else None."""
    body = _loads(text)
    if not isinstance(body, dict):
        return None
    if isinstance(body.get("instances"), list):
        return list(body["instances"])
    if isinstance(body.get("inputs"), list):
        return _v2_rows(body["inputs"])
    return None


def decode_predictions(text: str | None) -> list[Any] | None:
    """The predictions of a v1 (``predictions``) or v2 (first of ``outputs``) response."""
    body = _loads(text)
    if not isinstance(body, dict):
        return None
    if isinstance(body.get("predictions"), list):
        return list(body["predictions"])
    if isinstance(body.get("outputs"), list) and body["outputs"]:
        return _v2_rows(body["outputs"][:1])
    return None


def as_number(value: Any) -> float:
    """The number the monitor reads from a prediction or label: a scalar, or the last element
    of a list of class probabilities (P(class 1)); NaN for anything else or a non-finite value.

    >>> as_number(3), as_number([0.2, 0.8]), as_number("a"), as_number(True)
    (3.0, 0.8, nan, nan)
    """
    v = value[-1] if isinstance(value, list) and value else value
    if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
        return float(v)
    return math.nan


def instance_features(instance: Any, names: Sequence[str] | None) -> dict[str, Any]:
    """``feature.<name>`` → value of one instance (keyed by its keys, else by ``names`` when
    there are as many, else by position)."""
    if isinstance(instance, dict):
        return {f"feature.{k}": v for k, v in instance.items()}
    values = instance if isinstance(instance, list) else [instance]
    keys = names if names is not None and len(names) == len(values) else range(len(values))
    return {f"feature.{k}": v for k, v in zip(keys, values, strict=True)}


def instance_labels(label: Any, n: int) -> list[Any]:
    """The label of each of ``n`` instances: a list of n labels as given, one value for all,
    NaN when missing or when a list has another length."""
    if isinstance(label, list):
        return label if len(label) == n else [np.nan] * n
    return [np.nan if label is None else label] * n


def instance_rows(rec: dict[str, Any], names: Sequence[str] | None) -> list[dict[str, Any]]:
    """Split one ``requests()`` row into one row per instance (see :meth:`PayloadStore.window`)."""
    meta = {k: rec[k] for k in COLUMNS if k not in ("request", "response")}
    instances = decode_instances(rec["request"]) or [None]
    preds = decode_predictions(rec["response"]) or []
    labels = instance_labels(rec["label"], len(instances))
    rows = []
    for i, inst in enumerate(instances):
        row = {**meta, "instance": i, **({} if inst is None else instance_features(inst, names))}
        row["prediction"] = preds[i] if i < len(preds) else np.nan
        row["label"] = labels[i]
        rows.append(row)
    return rows
