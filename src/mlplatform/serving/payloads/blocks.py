"""Blocks: the payload log's complete requests stored a batch at a time, packed (PostgreSQL).

Read row by row, a window of 100k requests costs the server ~0.14 s however its columns are
packed: the time goes on the rows. So the writer stores each batch's complete requests a second
time, as ``payload_blocks``: one per model, endpoint, model version and feature layout, every
per-request column packed into one value (little-endian float64 times, statuses and
latencies, int32 instance and prediction counts, the compact features and predictions of
:mod:`.compact` joined, the labels as one JSON list, or ``""`` while none has a label).
The monitor reads the few blocks that overlap its window and decodes each whole
(:mod:`.block_read`).

* **Which rows.** A request is *complete* once both halves are in and its compact form is
  whole (features, and predictions when it has a response): the row then never changes again,
  but for its label. A batch takes one number from the sequence ``payload_batches``; each
  complete row gets ``block_key`` = that number and ``block_pos`` = its place in the batch, in
  the same statement that completes it (the sink's merge, or a whole record's insert), and its
  block is written in the same transaction, so a reader sees both or neither. Rows without a
  block (one half so far, a body the compact form cannot carry, a batch written row by row
  after an error, every row on SQLite) are read one by one as before (partial index
  ``payloads_unblocked``).
* **Complete means final.** A half delivered again for a request already in a block changes
  nothing (the agent delivers at least once; the first copy stands).
* **Labels.** A label stored before its request completes is in the block; a label stored
  after goes to ``label_blocks`` (one per feedback batch and model): the request's key
  ``block_key * 65536 + block_pos``, its time, and its row's ``latest_label`` with its time as
  they stand after the write (the trigger's choice). A reader takes, per request, the entry
  with the latest label time (the later block on a tie).
* **Retention** (:mod:`.retention`) deletes blocks whose requests are all pruned; a block that
  straddles the cut-off is deleted and its remaining rows are read one by one again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cache
from typing import Any

import numpy as np
import sqlalchemy as sa

from mlplatform.stores.schema import BATCHES, label_blocks, payload_blocks, payloads

#: ``block_pos`` lives in the low 16 bits of a request's key.
POS_BITS = 16
#: The columns of a complete row that its block packs.
ROW_COLUMNS = (
    *("request_id", "model", "endpoint", "model_version", "feature_layout", "ts", "status"),
    *("latency_ms", "feature_rows", "feature_numbers", "feature_strings"),
    *("prediction_numbers", "latest_label", "block_key", "block_pos"),
)
Rows = list[dict[str, Any]]
BulkWrite = Callable[[sa.Connection, Rows], None]


def next_batch(conn: sa.Connection) -> int:
    """A new batch number (``payload_batches``), never used before by any writer."""
    return int(conn.execute(sa.select(BATCHES.next_value())).scalar_one())


def complete(row: Mapping[str, Any]) -> bool:
    """A whole record's compact form is complete: features, and predictions if it has a
    response (what :func:`.window_sql.row_query` would otherwise read from its body)."""
    has_predictions = row.get("prediction_numbers") is not None or row.get("response") is None
    return row.get("feature_layout") is not None and has_predictions


def keys(block_key: Iterable[int], block_pos: Iterable[int]) -> Any:
    """Each request's key in its block: ``block_key * 65536 + block_pos``."""
    return (np.fromiter(block_key, np.int64) << POS_BITS) | np.fromiter(block_pos, np.int64)


def _floats(values: Iterable[Any]) -> bytes:
    return np.array([np.nan if v is None else v for v in values], "<f8").tobytes()


def block_params(rows: Sequence[Mapping[str, Any]]) -> Rows:
    """The ``payload_blocks`` rows of complete requests (:data:`ROW_COLUMNS`): one per model,
    endpoint, model version and layout, requests in the order given."""
    groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for row in rows:
        key = (row["model"], row["endpoint"], row["model_version"], row["feature_layout"])
        groups.setdefault(key, []).append(row)
    blocks = []
    for (model, endpoint, version, layout), group in groups.items():
        ts = np.array([r["ts"] for r in group], "<f8")
        predictions = [r["prediction_numbers"] or b"" for r in group]
        blocks.append(
            {
                "model": model,
                "endpoint": endpoint,
                "model_version": version,
                "feature_layout": layout,
                "ts_min": float(ts.min()),
                "ts_max": float(ts.max()),
                "n": len(group),
                "keys": keys((r["block_key"] for r in group), (r["block_pos"] for r in group))
                .astype("<i8")
                .tobytes(),
                "ts": ts.tobytes(),
                "status": _floats(r["status"] for r in group),
                "latency_ms": _floats(r["latency_ms"] for r in group),
                "feature_rows": np.array([r["feature_rows"] for r in group], "<i4").tobytes(),
                "feature_numbers": b"".join(r["feature_numbers"] or b"" for r in group),
                "feature_strings": "".join(r["feature_strings"] or "" for r in group),
                "prediction_sizes": np.array([len(p) // 8 for p in predictions], "<i4").tobytes(),
                "prediction_numbers": b"".join(predictions),
                "labels": _labels([r.get("latest_label") for r in group]),
            }
        )
    return blocks


def _labels(labels: list[str | None]) -> str:
    """The requests' labels as comma-separated JSON (``null`` for none), or ``""`` when none
    has one yet (the usual case: labels come later), which a reader skips without parsing."""
    if all(label is None for label in labels):
        return ""
    return ",".join(label or "null" for label in labels)


def write_blocks(conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Store the blocks of ``rows`` (complete, with their ``block_key``/``block_pos``)."""
    if rows:
        conn.execute(sa.insert(payload_blocks), block_params(rows))


@cache
def insert_in_blocks(statement: sa.Executable) -> BulkWrite:
    """A bulk write of whole records with ``statement`` (an INSERT of ``payloads`` rows) that
    puts the complete ones in blocks: a record is final once inserted."""

    def run(conn: sa.Connection, rows: Rows) -> None:
        batch = next_batch(conn)
        marked = [
            {**r, "block_key": batch if complete(r) else None, "block_pos": i}
            for i, r in enumerate(rows)
        ]
        conn.execute(statement, marked)
        write_blocks(conn, [r for r in marked if r["block_key"] is not None])

    return run


@cache
def merge_in_blocks(statement: Any) -> BulkWrite:
    """A bulk merge of one half per row with ``statement``
    (:func:`.statements.bulk_merge_half`, which returns the rows it completed) that puts the
    rows it completes in blocks."""

    def run(conn: sa.Connection, rows: Rows) -> None:
        params: dict[str, Any] = {c: [r[c] for r in rows] for c in rows[0]}
        params["block_pos"] = list(range(len(rows)))
        params["batch"] = next_batch(conn)
        write_blocks(conn, [dict(r) for r in conn.execute(statement, params).mappings()])

    return run


def write_label_blocks(conn: sa.Connection, ids: Iterable[str]) -> None:
    """After labels for ``ids`` were stored (in this transaction): the latest label of each of
    those requests that is already in a block, as it now stands in its row (the trigger's
    choice), into ``label_blocks``, one per model. A reader takes each request's entry with the
    latest label time, so the last state written wins whatever the writers' order."""
    p = payloads.c
    query = sa.select(
        p.model, p.ts, p.block_key, p.block_pos, p.latest_label, p.latest_label_ts
    ).where(p.request_id.in_(sorted(set(ids))), p.block_key.is_not(None))
    groups: dict[Any, list[sa.Row[Any]]] = {}
    for row in conn.execute(query):
        groups.setdefault(row.model, []).append(row)
    blocks = []
    for model, group in groups.items():
        ts = np.array([r.ts for r in group], "<f8")
        blocks.append(
            {
                "model": model,
                "ts_min": float(ts.min()),
                "ts_max": float(ts.max()),
                "keys": keys((r.block_key for r in group), (r.block_pos for r in group))
                .astype("<i8")
                .tobytes(),
                "ts": ts.tobytes(),
                "label_ts": _floats(r.latest_label_ts for r in group),
                "labels": ",".join(r.latest_label or "null" for r in group),
            }
        )
    if blocks:
        conn.execute(sa.insert(label_blocks), blocks)
