"""Request bodies → validated feature rows, shared by the predictor, transformer and explainer.

KServe v1: ``{"instances": [row, ...]}`` where a row is a list in feature order, an object
``{feature: value}``, or ``{<entity>: id}`` (looked up in the Feast online store).
Open Inference Protocol v2: one input per feature (shape [n], FP64/INT64/BYTES), or one
2-D FP64 input of shape [n, d] when every feature is numeric.

Every problem raises a platform error with the reason: :class:`~mlplatform.errors.RequestError`
for the body's shape, the model's :class:`~mlplatform.errors.DataError` for its values (both
HTTP 400 through :mod:`mlplatform.serving.error_handler`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pandas as pd
from kserve.protocol.infer_type import InferRequest

from mlplatform.core.model import LinearModel
from mlplatform.errors import RequestError, TooManyInstancesError

Lookup = Callable[[list[int]], pd.DataFrame]


def check_count(n: int, limit: int) -> None:
    if n == 0:
        raise RequestError("no instances: send at least one row")
    if n > limit:
        raise TooManyInstancesError(f"{n} instances exceed serve.max_instances={limit} per request")


def entity_ids(rows: list[Any], entity: str) -> list[int] | None:
    """The ids when every row is ``{entity: id}``; None when no row is; error when mixed."""
    flags = [isinstance(r, dict) and set(r) == {entity} for r in rows]
    if not any(flags):
        return None
    if not all(flags):
        raise RequestError("mix of entity ids and feature rows; send one kind per request")
    ids = [r[entity] for r in rows]
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise RequestError(f"{entity} must be an integer id, got {ids[:5]}")
    return ids


def encode(model: LinearModel, frame: pd.DataFrame) -> np.ndarray:
    """The encoded rows; NaN/inf, wrong types and unknown categories raise DataError (400)."""
    return model.encode(frame)


def as_json(payload: Any) -> Any:
    """KServe hands over the raw bytes when a client omits ``content-type: application/json``
    (plain ``curl -d``): parse them the same way."""
    if isinstance(payload, bytes | str):
        try:
            return orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise RequestError(f"the body is not valid JSON: {exc}") from None
    return payload


def v1_frame(
    payload: Any, model: LinearModel, entity: str, limit: int, lookup: Lookup | None = None
) -> pd.DataFrame:
    """Feature rows of a v1 body (raw rows, or entity ids resolved by ``lookup``)."""
    payload = as_json(payload)
    if not isinstance(payload, dict) or "instances" not in payload:
        raise RequestError('expected a JSON object with an "instances" list')
    rows = payload["instances"]
    if not isinstance(rows, list):
        raise RequestError('"instances" must be a list')
    check_count(len(rows), limit)
    ids = entity_ids(rows, entity)
    if ids is None:
        return model.frame(rows)
    if lookup is None:
        raise RequestError(f"this server has no feature store to resolve {entity} ids")
    return lookup(ids)


def v2_frame(request: InferRequest, model: LinearModel, limit: int) -> pd.DataFrame:
    """Feature rows of an Open Inference Protocol request."""
    names = list(model.feature_names)
    inputs = {i.name: i for i in request.inputs}
    try:
        if set(names) <= set(inputs):
            cols = {n: _column(inputs[n].as_numpy()) for n in names}
            frame = pd.DataFrame(cols)
        elif len(inputs) == 1:
            arr = next(iter(inputs.values())).as_numpy()
            if arr.ndim != 2 or arr.shape[1] != len(names):
                raise RequestError(
                    f"expected shape [n, {len(names)}] for {names}, got {list(arr.shape)}"
                )
            frame = (
                pd.DataFrame(arr.astype(np.float64), columns=names)
                if not model.scaler.categorical and arr.dtype.kind in "fiu"
                else model.frame(arr.tolist())
            )
        else:
            raise RequestError(f"expected one input per feature {names} or one [n, d] input")
        check_count(len(frame), limit)
        return frame
    except (ValueError, TypeError) as exc:
        raise RequestError(f"malformed tensor: {exc}") from None


def _column(arr: np.ndarray) -> np.ndarray:
    flat = arr.reshape(-1)
    if flat.dtype.kind in "SO":
        return np.array([v.decode() if isinstance(v, bytes) else v for v in flat], dtype=object)
    return flat
