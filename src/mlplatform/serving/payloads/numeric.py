"""A window of the payload log as numbers, read in bulk (:meth:`PayloadStore.numeric_window`).

One query reads the window's rows: the columns the monitor needs, their compact form
(:mod:`.compact`) and their latest label (``payloads.latest_label``, kept by a trigger on
``feedback``). A JSON body is read only for a row without the compact form (logged before
migration ``payloads_0002``, or by an older writer); it is encoded here exactly as at
ingestion. The instances of all requests of one layout are then decoded at once with numpy;
the rare body the compact form cannot carry goes through :func:`~.decode.instance_features`,
as in :meth:`PayloadStore.window`. Nothing here builds a Python object per request beyond the
fetched row itself.

The frame equals those columns of :meth:`PayloadStore.window` with ``prediction`` and ``label``
mapped through :func:`~.decode.as_number` (``tests/unit/test_payload_numbers.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import numpy as np
import orjson
import pandas as pd
import sqlalchemy as sa
from numpy.typing import NDArray

from mlplatform.serving.payloads.compact import (
    FEATURE_COLUMNS,
    PREDICTION_COLUMN,
    Layout,
    encode_request,
    encode_response,
    parse_layout,
)
from mlplatform.serving.payloads.decode import (
    as_number,
    decode_instances,
    instance_features,
    instance_labels,
)
from mlplatform.stores.schema import payloads

#: Per-request columns of the frame, as in :meth:`PayloadStore.window`.
META = ("endpoint", "status", "latency_ms", "model_version")
Ints = NDArray[np.int64]
Floats = NDArray[np.float64]
Objects = NDArray[Any]


def window_query(since: float, until: float, model: str | None) -> sa.Select[Any]:
    """The rows of ``[since, until)`` oldest first (as :meth:`PayloadStore.requests`), with a
    body only where its compact form is missing."""
    p = payloads.c
    query = sa.select(
        *(p[c] for c in (*META, *FEATURE_COLUMNS, PREDICTION_COLUMN)),
        sa.func.coalesce(p.latest_label, "null"),
        sa.case((p.feature_layout.is_(None), p.request)),
        sa.case((p.prediction_numbers.is_(None), p.response)),
    ).where(p.ts >= since, p.ts < until)
    if model is not None:
        query = query.where(p.model == model)
    return query.order_by(p.ts, p.request_id)


def window_queries(
    since: float, until: float, model: str | None, slices: int = 1
) -> list[sa.Select[Any]]:
    """:func:`window_query` of ``slices`` consecutive equal spans of ``[since, until)``: their
    rows, concatenated in order, are the rows of the whole window."""
    edges = [since + (until - since) * k / slices for k in range(slices)] + [until]
    return [window_query(a, b, model) for a, b in pairwise(edges)]


def numeric_frame(table: Objects, names: Sequence[str] | None) -> pd.DataFrame:
    """One row per instance from the rows of :func:`window_query` (a ``(rows, columns)``
    object array, see :func:`~mlplatform.stores.bulk_rows`): :data:`META`, ``instance``,
    ``feature.<name>`` per feature, ``prediction`` and ``label`` (float64, NaN when missing)."""
    if not len(table):
        return pd.DataFrame()
    cols = list(table.T)
    layouts, n, numbers, strings, preds, labels, requests, responses = cols[len(META) :]
    _encode_missing(layouts, n, numbers, strings, requests)
    counts, features = _features(layouts, n, numbers, strings, requests, names)
    meta = pd.DataFrame({c: cols[i] for i, c in enumerate(META)}).infer_objects()
    request_of = np.repeat(np.arange(len(counts)), counts)
    if len(request_of) != len(counts):
        meta = meta.take(request_of).reset_index(drop=True)
    meta["instance"] = np.arange(len(request_of)) - np.repeat(_starts(counts), counts)
    numeric = {
        "prediction": _predictions(preds, responses, counts),
        "label": _labels(labels, counts),
    }
    return pd.concat([meta, features, pd.DataFrame(numeric)], axis=1)


def _starts(counts: Ints) -> Ints:
    return np.cumsum(counts) - counts


def _positions(starts: Ints, counts: Ints) -> Ints:
    """The concatenated ranges ``[start, start + count)`` of every (start, count)."""
    shift = np.repeat(starts - _starts(counts), counts)
    return shift + np.arange(int(counts.sum()))


def _encode_missing(
    layouts: Objects, n: Objects, numbers: Objects, strings: Objects, requests: Objects
) -> None:
    """Fill in the feature columns of rows without them from their bodies (in place; a body
    the form cannot carry leaves them None)."""
    for i in np.flatnonzero(pd.isna(layouts)):
        encoded = encode_request(requests[i])
        for col, name in zip((layouts, n, numbers, strings), FEATURE_COLUMNS, strict=True):
            col[i] = encoded[name]


def _features(
    layouts: Objects,
    n: Objects,
    numbers: Objects,
    strings: Objects,
    requests: Objects,
    names: Sequence[str] | None,
) -> tuple[Ints, pd.DataFrame]:
    """Instances per request, and the ``feature.<name>`` columns of every instance."""
    codes, uniques = pd.factorize(layouts)
    loose = np.flatnonzero(codes < 0)
    instances = [decode_instances(requests[i]) or [None] for i in loose]
    n[loose] = [len(v) for v in instances]
    counts = n.astype(np.int64)
    starts = _starts(counts)
    frames = []
    for code, text in enumerate(uniques):
        idx = np.flatnonzero(codes == code)
        layout = parse_layout(text)
        if layout.kinds:
            columns = _columns(layout, numbers[idx], strings[idx], names)
            frames.append(pd.DataFrame(columns, index=_positions(starts[idx], counts[idx])))
    if len(loose):
        rows = [{} if x is None else instance_features(x, names) for v in instances for x in v]
        frames.append(pd.DataFrame(rows, index=_positions(starts[loose], counts[loose])))
    every = pd.RangeIndex(int(counts.sum()))
    return counts, pd.concat(frames).reindex(every) if frames else pd.DataFrame(index=every)


def _columns(
    layout: Layout, numbers: Objects, strings: Objects, names: Sequence[str] | None
) -> dict[str, Any]:
    """The feature columns of the instances of requests of one layout."""
    numeric = [j for j, k in enumerate(layout.kinds) if k != "s"]
    textual = [j for j, k in enumerate(layout.kinds) if k == "s"]
    values: dict[int, Any] = {}
    if numeric:
        matrix = np.frombuffer(b"".join(numbers), "<f8").reshape(-1, len(numeric))
        for col, j in enumerate(numeric):
            v = matrix[:, col]
            values[j] = v.astype(np.int64) if layout.kinds[j] == "i" else v
    if textual:
        flat = orjson.loads("[" + "".join(strings)[:-1] + "]")
        matrix = np.array(flat, dtype=object).reshape(-1, len(textual))
        for col, j in enumerate(textual):
            values[j] = matrix[:, col]
    column_names = layout.names(None if names is None else tuple(names))
    return {f"feature.{column_names[j]}": values[j] for j in range(len(layout.kinds))}


def _predictions(preds: Objects, responses: Objects, counts: Ints) -> Floats:
    """Per instance: the request's i-th prediction, NaN where it has fewer."""
    for i in np.flatnonzero(pd.isna(preds)):
        preds[i] = encode_response(responses[i])[PREDICTION_COLUMN]
    values = np.frombuffer(b"".join(preds), "<f8")
    sizes = np.fromiter(map(len, preds), np.int64, len(preds)) // 8
    if np.array_equal(sizes, counts):
        return values.copy()
    request_of = np.repeat(np.arange(len(counts)), counts)
    at = np.arange(int(counts.sum())) - np.repeat(_starts(counts), counts)
    ok = at < sizes[request_of]
    out = np.full(len(at), np.nan)
    out[ok] = values[(_starts(sizes)[request_of] + at)[ok]]
    return out


def _labels(texts: Objects, counts: Ints) -> Floats:
    """Per instance, the number of its request's latest label (NaN when there is none)."""
    labels = orjson.loads("[" + ",".join(texts) + "]")
    if set(map(type, labels)) <= {float, int, type(None)}:  # scalars: one value for all
        values = np.array(labels, dtype=np.float64)  # None → NaN
        return np.repeat(np.where(np.isfinite(values), values, np.nan), counts)
    per_instance = [instance_labels(v, int(k)) for v, k in zip(labels, counts, strict=True)]
    return np.array([as_number(x) for xs in per_instance for x in xs], dtype=np.float64)
