"""Reading the blocks written at ingestion (:mod:`.blocks`) back as :class:`~.numeric.Block` s.

A window reads every ``payload_blocks`` row that overlaps it and every ``label_blocks`` row of
the same span, in one snapshot with the rows that have no block
(:meth:`PayloadStore.window_blocks`). Per block, numpy decodes each packed column whole; the
requests of a block that straddles the window's edges are cut away here, and each request's
label is the one in its block unless a label block holds a later one (the entry with the
latest label time, the later label block on a tie).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson
import sqlalchemy as sa
from numpy.typing import NDArray

from mlplatform.serving.payloads.compact import parse_layout
from mlplatform.serving.payloads.numeric import Block, Floats, Ints, Objects
from mlplatform.stores.schema import label_blocks, payload_blocks


def stored_queries(since: float, until: float, model: str | None) -> list[sa.Select[Any]]:
    """The data blocks and the label blocks that overlap ``[since, until)``."""
    b = payload_blocks.c
    data = sa.select(
        b.endpoint,
        b.model_version,
        b.feature_layout,
        b["keys"],
        b.ts,
        b.status,
        b.latency_ms,
        b.feature_rows,
        b.feature_numbers,
        b.feature_strings,
        b.prediction_sizes,
        b.prediction_numbers,
        b.labels,
    ).where(b.ts_max >= since, b.ts_min < until)
    data = data.order_by(b.id)  # the order they were written: keys ascending, mostly
    lab = label_blocks.c
    labels = (
        sa.select(lab["keys"], lab.label_ts, lab.labels)
        .where(lab.ts_max >= since, lab.ts_min < until)
        .order_by(lab.id)
    )
    if model is not None:
        data, labels = data.where(b.model == model), labels.where(lab.model == model)
    return [data, labels]


def stored_blocks(data: Objects, labels: Objects, since: float, until: float) -> list[Block]:
    """The :class:`Block` s of the rows of :func:`stored_queries`, cut to ``[since, until)``,
    with the latest labels: the stored blocks of one endpoint, model version and layout are
    joined into one, so a window costs a few numpy calls whatever its number of blocks."""
    if not len(data):
        return []
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, row in enumerate(data):
        groups.setdefault((row[0], row[1], row[2]), []).append(i)
    joined = [_joined(data[rows]) for rows in groups.values()]
    blocks = [b for b, _ in joined]
    if len(labels):
        _relabel(blocks, [k for _, k in joined], labels)
    out = []
    for b in blocks:
        keep = (b.ts >= since) & (b.ts < until)
        if keep.all():
            out.append(b)
        elif keep.any():
            out.append(take(b, keep))
    return out


def _joined(rows: Objects) -> tuple[Block, Ints]:
    """One :class:`Block` of stored blocks of one key (rows of :func:`stored_queries`), with
    its requests' keys."""
    endpoint, version, layout = rows[0, :3]
    packed = [b"".join(rows[:, j]) for j in (3, 4, 5, 6, 7, 8, 10, 11)]
    keys, ts, status, latency, counts, numbers, sizes, predictions = packed
    block = Block(
        endpoint,
        version,
        layout,
        np.frombuffer(ts, ">f8").astype(np.float64),
        np.frombuffer(status, ">f8").astype(np.float64),
        np.frombuffer(latency, ">f8").astype(np.float64),
        np.frombuffer(counts, ">i4").astype(np.int64),
        numbers,
        "".join(rows[:, 9]),
        np.frombuffer(sizes, ">i4").astype(np.int64),
        predictions,
        _block_labels(rows[:, 12], [len(t) // 8 for t in rows[:, 4]]),
    )
    return block, np.frombuffer(keys, ">i8").astype(np.int64)


def _block_labels(texts: Objects, sizes: Sequence[int]) -> Floats | list[Any]:
    """The labels of stored blocks joined, from each block's text (``""``: no label yet) and
    number of requests."""
    if not any(texts):
        return np.full(sum(sizes), np.nan)
    parts = [
        label_values(t) if t else np.full(n, np.nan) for t, n in zip(texts, sizes, strict=True)
    ]
    if all(isinstance(p, np.ndarray) for p in parts):
        return np.concatenate(parts)
    return [x for p in parts for x in (_objects(p).tolist() if isinstance(p, np.ndarray) else p)]


def label_values(texts: str) -> Floats | list[Any]:
    """Comma-separated JSON labels as float64 (None → NaN) when every one is a number or
    null (text without ``[``, ``{``, ``"``, ``t``, ``f``: no list, object, string or
    boolean), else as the parsed values."""
    values = orjson.loads("[" + texts + "]")
    if any(c in texts for c in '[{"tf'):
        return list(values)
    return np.array(values, dtype=np.float64)


def _relabel(blocks: list[Block], block_keys: list[Ints], labels: Objects) -> None:
    """Give each request that a label block names the latest label it names (in place)."""
    keys = np.concatenate([np.frombuffer(k, ">i8") for k in labels[:, 0]])
    label_ts = np.concatenate([np.frombuffer(t, ">f8") for t in labels[:, 1]])
    texts = label_values(",".join(labels[:, 2]))
    if np.all(label_ts[1:] >= label_ts[:-1]):  # written in time order: by key, then write
        order = np.argsort(keys, kind="stable")
    else:  # by key, then time, then write
        order = np.lexsort((np.arange(len(keys)), label_ts, keys))
    last = order[np.append(keys[order][1:] != keys[order][:-1], True)]
    for i, mine in enumerate(block_keys):
        # keys are unique, and ascending when the blocks come in the order they were written
        sorted_at = np.arange(len(mine)) if np.all(mine[1:] > mine[:-1]) else np.argsort(mine)
        at = np.searchsorted(mine[sorted_at], keys[last]).clip(max=len(mine) - 1)
        found = mine[sorted_at[at]] == keys[last]
        if not found.any():
            continue
        values, new = blocks[i].labels, texts
        if isinstance(values, str):
            values = label_values(values)
        if isinstance(values, list) or isinstance(new, list):  # not all numbers: objects
            values, new = _objects(values), _objects(new)
        values[sorted_at[at[found]]] = new[last[found]]
        blocks[i] = _with_labels(blocks[i], values.tolist() if values.dtype == object else values)


def _objects(values: Floats | list[Any]) -> Objects:
    """Labels as an object array (NaN → None, as JSON null parses)."""
    if isinstance(values, np.ndarray):
        values = [None if np.isnan(v) else float(v) for v in values]
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _with_labels(b: Block, labels: Floats | list[Any]) -> Block:
    return Block(
        b.endpoint,
        b.model_version,
        b.layout,
        b.ts,
        b.status,
        b.latency_ms,
        b.counts,
        b.numbers,
        b.strings,
        b.prediction_sizes,
        b.predictions,
        labels,
    )


def take(b: Block, keep: NDArray[np.bool_]) -> Block:
    """The requests of ``b`` where ``keep``."""
    assert b.layout is not None
    kinds = parse_layout(b.layout).kinds
    numeric, textual = sum(k != "s" for k in kinds), sum(k == "s" for k in kinds)
    instances = np.repeat(keep, b.counts)
    numbers = b""
    if numeric:
        numbers = np.frombuffer(b.numbers, "<f8").reshape(-1, numeric)[instances].tobytes()
    strings = b.strings
    if textual:
        values = orjson.loads("[" + b.strings[:-1] + "]")
        kept = np.array(values, dtype=object).reshape(-1, textual)[instances].ravel()
        strings = "".join(orjson.dumps(v).decode() + "," for v in kept)
    predictions = np.frombuffer(b.predictions, "<f8")[np.repeat(keep, b.prediction_sizes)]
    labels = label_values(b.labels) if isinstance(b.labels, str) else b.labels
    return Block(
        b.endpoint,
        b.model_version,
        b.layout,
        b.ts[keep],
        b.status[keep],
        b.latency_ms[keep],
        b.counts[keep],
        numbers,
        strings,
        b.prediction_sizes[keep],
        predictions.tobytes(),
        labels[keep]
        if isinstance(labels, np.ndarray)
        else [x for x, k in zip(labels, keep, strict=True) if k],
    )
