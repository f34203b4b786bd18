"""A window of the payload log as numbers, read in bulk (:meth:`PayloadStore.numeric_window`).

The reader works on *blocks*: the requests of one (endpoint, model version, feature layout),
each per-request column packed into one value (times, statuses and latencies as float64, the
compact features and predictions of :mod:`.compact` joined, the latest labels as one JSON
list), so numpy decodes a whole block at once and nothing builds a Python object per request.

* On PostgreSQL the server packs the blocks itself: one ``GROUP BY`` query per slice of the
  window (``string_agg`` of ``float8send(...)`` and of the compact bytes), the slices read at
  once from one snapshot (:func:`~mlplatform.stores.bulk_read`). The i-th element of every
  packed column is the same request's: the executor feeds each input row to every aggregate
  of its group in turn, and the read runs without parallel workers
  (:data:`~mlplatform.stores.engine.PG_READ_SETTINGS`), so no two aggregates see the rows in
  different orders. Only rows without the compact form are read one by one, with their
  bodies.
* On SQLite every row is read one by one and grouped into the same blocks here.

A row without the compact form (logged before migration ``payloads_0002``, or by an older
writer) is encoded from its body exactly as at ingestion; a body the form cannot carry goes
through :func:`~.decode.instance_features`, as in :meth:`PayloadStore.window`.

The frame has one row per instance, ordered by the request's time (requests logged at the
same instant in no set order), and equals those columns of :meth:`PayloadStore.window` with
``prediction`` and ``label`` mapped through :func:`~.decode.as_number`
(``tests/unit/test_payload_numbers.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pandas as pd
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

#: Per-request columns of the frame, as in :meth:`PayloadStore.window`.
META = ("endpoint", "status", "latency_ms", "model_version")
Ints = NDArray[np.int64]
Floats = NDArray[np.float64]
Objects = NDArray[Any]


@dataclass(frozen=True)
class Block:
    """The requests of one (endpoint, model version, layout), each column packed."""

    endpoint: Any
    model_version: Any
    layout: str | None  # None: bodies the compact form cannot carry (``instances`` then)
    ts: Floats
    status: Floats
    latency_ms: Floats
    counts: Ints  # instances per request
    numbers: bytes
    strings: str
    prediction_sizes: Ints  # predictions per request
    predictions: bytes
    #: the requests' latest labels: JSON, comma-separated; or parsed; or float64 (NaN: none)
    labels: str | list[Any] | Floats
    instances: list[list[Any]] | None = None


def packed_block(row: Sequence[Any]) -> Block:
    """The :class:`Block` of one row of a block query."""
    endpoint, version, layout, ts, status, latency, counts, numbers, sizes, preds, s, y = row
    return Block(
        endpoint,
        version,
        layout,
        np.frombuffer(ts, ">f8").astype(np.float64),
        np.frombuffer(status, ">f8").astype(np.float64),
        np.frombuffer(latency, ">f8").astype(np.float64),
        np.frombuffer(counts, ">i4").astype(np.int64),
        bytes(numbers),
        s,
        np.frombuffer(sizes, ">i4").astype(np.int64) // 8,
        bytes(preds),
        y,
    )


def row_blocks(table: Objects) -> list[Block]:
    """The blocks of rows read one by one (:func:`.window_sql.row_query`), their compact form
    completed from their bodies where it is missing."""
    if not len(table):
        return []
    (endpoint, version, ts, status, latency, layout, n, numbers, strings, preds, labels) = list(
        table[:, :11].T
    )
    requests, responses = table[:, 11], table[:, 12]
    for i in np.flatnonzero(pd.isna(layout)):
        encoded = encode_request(requests[i])
        layout[i], n[i], numbers[i], strings[i] = (encoded[c] for c in FEATURE_COLUMNS)
    for i in np.flatnonzero(pd.isna(preds)):
        preds[i] = encode_response(responses[i])[PREDICTION_COLUMN]
    keys = pd.DataFrame({"e": endpoint, "v": version, "l": layout})
    group = keys.groupby(list(keys), dropna=False, sort=False).ngroup().to_numpy()
    blocks = []
    for g in range(int(group.max()) + 1):
        idx = np.flatnonzero(group == g)
        first = idx[0]
        loose = None
        if pd.isna(layout[first]):
            loose = [decode_instances(requests[i]) or [None] for i in idx]
            n[idx] = [len(v) for v in loose]
        blocks.append(
            Block(
                endpoint[first],
                version[first],
                None if loose is not None else layout[first],
                np.array(ts[idx], dtype=np.float64),
                np.array(status[idx], dtype=np.float64),
                np.array(latency[idx], dtype=np.float64),
                n[idx].astype(np.int64),
                b"".join(numbers[i] or b"" for i in idx),
                "".join(strings[i] or "" for i in idx),
                np.fromiter((len(preds[i]) // 8 for i in idx), np.int64, len(idx)),
                b"".join(preds[idx]),
                ",".join(labels[idx]),
                loose,
            )
        )
    return blocks


def numeric_frame(blocks: Sequence[Block], names: Sequence[str] | None) -> pd.DataFrame:
    """One row per instance of every block's requests, ordered by time: :data:`META`,
    ``instance``, ``feature.<name>`` per feature, ``prediction`` and ``label`` (float64, NaN
    when missing)."""
    if not blocks:
        return pd.DataFrame()
    frames, times = zip(*(_block_frame(b, names) for b in blocks), strict=True)
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    ts = np.concatenate(times)
    if np.any(ts[1:] < ts[:-1]):
        frame = frame.take(np.argsort(ts, kind="stable")).reset_index(drop=True)
    return frame


def _starts(counts: Ints) -> Ints:
    return np.cumsum(counts) - counts


def _block_frame(b: Block, names: Sequence[str] | None) -> tuple[pd.DataFrame, Floats]:
    counts = b.counts
    total = int(counts.sum())
    request_of = np.repeat(np.arange(len(counts)), counts)
    columns: dict[str, Any] = {
        "endpoint": np.full(total, b.endpoint, dtype=object),
        "status": b.status[request_of],
        "latency_ms": b.latency_ms[request_of],
        "model_version": np.full(total, b.model_version, dtype=object),
        "instance": np.arange(total) - np.repeat(_starts(counts), counts),
    }
    columns.update(block_features(b, names))
    columns["prediction"] = block_predictions(b)
    columns["label"] = block_labels(b)
    return pd.DataFrame(columns), b.ts[request_of]


def block_features(b: Block, names: Sequence[str] | None) -> dict[str, Any]:
    """The ``feature.<name>`` columns of a block's instances (one value per instance)."""
    if b.instances is not None:
        rows = [{} if x is None else instance_features(x, names) for v in b.instances for x in v]
        frame = pd.DataFrame(rows, index=pd.RangeIndex(int(b.counts.sum())))
        return {name: frame[name].to_numpy() for name in frame.columns}
    if b.layout is not None:
        return _columns(parse_layout(b.layout), b.numbers, b.strings, names)
    return {}


def block_predictions(b: Block) -> Floats:
    """Per instance of a block: its request's i-th prediction, NaN where it has fewer."""
    return _predictions(b.prediction_sizes, b.predictions, b.counts)


def block_labels(b: Block) -> Floats:
    """Per instance of a block: the number of its request's latest label, NaN if none."""
    return _labels(b.labels, b.counts)


def _columns(
    layout: Layout, numbers: bytes, strings: str, names: Sequence[str] | None
) -> dict[str, Any]:
    """The feature columns of the instances of requests of one layout."""
    numeric = [j for j, k in enumerate(layout.kinds) if k != "s"]
    textual = [j for j, k in enumerate(layout.kinds) if k == "s"]
    values: dict[int, Any] = {}
    if numeric:
        matrix = np.frombuffer(numbers, "<f8").reshape(-1, len(numeric))
        for col, j in enumerate(numeric):
            v = matrix[:, col]
            values[j] = v.astype(np.int64) if layout.kinds[j] == "i" else v.copy()
    if textual:
        flat = orjson.loads("[" + strings[:-1] + "]")
        matrix = np.array(flat, dtype=object).reshape(-1, len(textual))
        for col, j in enumerate(textual):
            values[j] = matrix[:, col]
    column_names = layout.names(None if names is None else tuple(names))
    return {f"feature.{column_names[j]}": values[j] for j in range(len(layout.kinds))}


def _predictions(sizes: Ints, packed: bytes, counts: Ints) -> Floats:
    """Per instance: the request's i-th prediction, NaN where it has fewer."""
    values = np.frombuffer(packed, "<f8")
    if np.array_equal(sizes, counts):
        return values.copy()
    request_of = np.repeat(np.arange(len(counts)), counts)
    at = np.arange(int(counts.sum())) - np.repeat(_starts(counts), counts)
    ok = at < sizes[request_of]
    out = np.full(len(at), np.nan)
    out[ok] = values[(_starts(sizes)[request_of] + at)[ok]]
    return out


def _labels(texts: str | list[Any] | Floats, counts: Ints) -> Floats:
    """Per instance, the number of its request's latest label (NaN when there is none)."""
    if isinstance(texts, np.ndarray):  # numbers already (NaN: none)
        return np.repeat(np.where(np.isfinite(texts), texts, np.nan), counts)
    labels = orjson.loads("[" + texts + "]") if isinstance(texts, str) else texts
    if set(map(type, labels)) <= {float, int, type(None)}:  # scalars: one value for all
        values = np.array(labels, dtype=np.float64)  # None → NaN
        return np.repeat(np.where(np.isfinite(values), values, np.nan), counts)
    per_instance = [instance_labels(v, int(k)) for v, k in zip(labels, counts, strict=True)]
    return np.array([as_number(x) for xs in per_instance for x in xs], dtype=np.float64)
