"""Blocks: the payload log's complete requests stored a batch at a time, packed (PostgreSQL).

Read row by row, a window of 100k requests costs the server ~0.14 s however its columns are
packed: the time goes on the rows. So the writer stores each batch's complete requests a second
time, as ``payload_blocks``: one per model, endpoint, model version and feature layout, every
per-request column packed into one value by the server (big-endian float64 times, statuses and
latencies, int64 keys, int32 instance and prediction counts, the little-endian compact features
and predictions of :mod:`.compact` joined, the labels as one JSON list, or ``""`` while none has
a label), each in the requests' ``block_pos`` order. The monitor reads the few blocks that
overlap its window and decodes each whole (:mod:`.block_read`).

* **Which rows.** A request is *complete* once both halves are in and its compact form is
  whole (features, and predictions when it has a response): the row then never changes again,
  but for its label. A batch takes a number from the sequence ``payload_batches`` (which
  steps by :data:`RESERVED`: one ``nextval`` reserves that many numbers for one writer's
  connection). Each complete row gets ``block_key`` = that number and ``block_pos`` = its place
  in the batch, in the same statement that completes it (the sink's merge, or a whole record's
  insert); one more statement packs the batch's complete rows into blocks, in the same
  transaction, so a reader sees both or neither. Rows without a block (one half so far, a body
  the compact form cannot carry, a batch written row by row after an error, every row on
  SQLite) are read one by one as before (partial index ``payloads_unblocked``).
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

import itertools
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from mlplatform.serving.payloads.statements import (
    bulk_merge_half,
    bulk_merge_pair,
    rows_param,
)
from mlplatform.serving.payloads.window_sql import EMPTY_BYTES, float8
from mlplatform.stores.schema import BATCHES, label_blocks, payload_blocks, payloads

#: ``block_pos`` lives in the low 16 bits of a request's key.
POS_BITS = 16
#: Batch numbers one ``nextval`` reserves (the sequence's step, ``payloads_0005``).
RESERVED = 1024
Rows = list[dict[str, Any]]
BulkWrite = Callable[[sa.Connection, Rows], None]


def next_batch(conn: sa.Connection) -> int:
    """A batch number no writer has used: the next of the numbers this connection reserved,
    reserving :data:`RESERVED` more (one ``nextval``) when they are used up."""
    first, end = conn.info.get("payload_batches", (0, 0))
    if first >= end:
        first = int(conn.execute(sa.select(BATCHES.next_value())).scalar_one())
        end = first + RESERVED
    conn.info["payload_batches"] = (first + 1, end)
    return int(first)


def complete(row: Mapping[str, Any]) -> bool:
    """A whole record's compact form is complete: features, and predictions if it has a
    response (what :func:`.window_sql.row_query` would otherwise read from its body)."""
    has_predictions = row.get("prediction_numbers") is not None or row.get("response") is None
    return row.get("feature_layout") is not None and has_predictions


def joined(value: Any, separator: Any, order: Any) -> Any:
    """``string_agg(value, separator ORDER BY order)``."""
    return sa.func.string_agg(value, postgresql.aggregate_order_by(separator, order))


def _packed(value: Any, order: Any) -> Any:
    return joined(value, EMPTY_BYTES, order)


def key_of(block_key: Any, block_pos: Any) -> Any:
    """A request's key in SQL: ``block_key * 65536 + block_pos``."""
    return block_key * (1 << POS_BITS) + block_pos


#: The ``payloads`` columns a block is packed from.
PACKED = (
    *("model", "endpoint", "model_version", "feature_layout", "ts", "block_key", "block_pos"),
    *("status", "latency_ms", "feature_rows", "feature_numbers", "feature_strings"),
    *("prediction_numbers", "latest_label"),
)


def pack_into_blocks(rows: Any, *where: Any) -> Any:
    """``INSERT INTO payload_blocks``: the rows of ``rows`` (a table or subquery with the
    :data:`PACKED` columns) that are in batch ``:batch`` and meet ``where``, grouped and packed
    by the server."""
    p = rows.c
    at = p.block_pos
    labels = joined(sa.func.coalesce(p.latest_label, "null"), sa.literal(","), at)
    columns = {
        "model": p.model,
        "endpoint": p.endpoint,
        "model_version": p.model_version,
        "feature_layout": p.feature_layout,
        "ts_min": sa.func.min(p.ts),
        "ts_max": sa.func.max(p.ts),
        "n": sa.func.count(),
        "keys": _packed(sa.func.int8send(key_of(p.block_key, at)), at),
        "ts": _packed(float8(p.ts), at),
        "status": _packed(float8(p.status), at),
        "latency_ms": _packed(float8(p.latency_ms), at),
        "feature_rows": _packed(sa.func.int4send(p.feature_rows), at),
        "feature_numbers": _packed(sa.func.coalesce(p.feature_numbers, EMPTY_BYTES), at),
        "feature_strings": joined(sa.func.coalesce(p.feature_strings, ""), sa.literal(""), at),
        "prediction_sizes": _packed(
            sa.func.int4send(sa.func.coalesce(sa.func.length(p.prediction_numbers), 0) // 8), at
        ),
        "prediction_numbers": _packed(sa.func.coalesce(p.prediction_numbers, EMPTY_BYTES), at),
        "labels": sa.case((sa.func.bool_and(p.latest_label.is_(None)), ""), else_=labels),
    }
    packed = (
        sa.select(*(v.label(k) for k, v in columns.items()))
        .where(p.block_key == sa.bindparam("batch", type_=sa.BigInteger), *where)
        .group_by(p.model, p.endpoint, p.model_version, p.feature_layout)
    )
    return sa.insert(payload_blocks).from_select(list(columns), packed)


@cache
def pack_blocks() -> Any:
    """The ``payload_blocks`` of batch ``:batch``: its complete rows among ``:ids`` (request
    ids, a JSON list)."""
    ids = sa.cast(sa.bindparam("ids", type_=sa.Text), postgresql.JSON)
    listed = sa.select(sa.func.json_array_elements_text(ids))
    return pack_into_blocks(payloads, payloads.c.request_id.in_(listed))


@cache
def merge_and_pack() -> Any:
    """ONE statement for a batch of the sink's halves: the pairs (``:pairs``), the lone request
    halves (``:requests``) and the lone response halves (``:responses``) merged, each a
    data-modifying CTE returning the rows as they now stand (their labels included), and the
    rows that completed packed into blocks from what they return. One round trip instead of
    four: the writer waits on the server once per batch."""
    returned = [payloads.c[c] for c in PACKED]
    parts = [
        statement.returning(*returned).cte(name)
        for name, statement in (
            ("pairs", bulk_merge_pair()),
            ("requests", bulk_merge_half("request")),
            ("responses", bulk_merge_half("response")),
        )
    ]
    merged = sa.union_all(*(sa.select(*part.c) for part in parts)).subquery("merged")
    return pack_into_blocks(merged)


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
        pack(conn, [r["request_id"] for r in rows], batch)

    return run


@cache
def merge_in_blocks() -> BulkWrite:
    """A bulk merge of request and response halves (the sink's events) that puts the requests
    it completes in blocks. A request whose two halves are both in the batch, once each, is
    written as one row (:func:`.statements.bulk_merge_pair`): one insert instead of an insert
    and an update. The other halves are merged by half (:func:`.statements.bulk_merge_half`),
    and the completed requests packed, all in one statement (:func:`merge_and_pack`). A half
    twice in the batch makes it fail, and the writer then merges row by row, without
    blocks."""

    def run(conn: sa.Connection, rows: Rows) -> None:
        requests, responses = _halves(rows)
        pairs = []
        for rid, request in list(requests.items()):
            response = responses.get(rid, [])
            if len(request) == len(response) == 1:
                pairs.append({**response[0], **request[0], "response_ts": response[0]["ts"]})
                del requests[rid], responses[rid]
        position = itertools.count()
        params: dict[str, Any] = {"batch": next_batch(conn)}
        for name, group in (
            ("pairs", pairs),
            ("requests", [r for q in requests.values() for r in q]),
            ("responses", [r for q in responses.values() for r in q]),
        ):
            params[name] = rows_param([{**r, "block_pos": next(position)} for r in group])
        conn.execute(merge_and_pack(), params)

    return run


def _halves(rows: Rows) -> tuple[dict[str, Rows], dict[str, Rows]]:
    """The request halves and the response halves by request id, in order."""
    requests: dict[str, Rows] = {}
    responses: dict[str, Rows] = {}
    for row in rows:
        side = requests if "request" in row else responses
        side.setdefault(row["request_id"], []).append(row)
    return requests, responses


def pack(conn: sa.Connection, ids: list[str], batch: int) -> None:
    """Pack batch ``batch``'s complete rows among ``ids`` into blocks (:func:`pack_blocks`)."""
    conn.execute(pack_blocks(), {"ids": orjson.dumps(ids).decode(), "batch": batch})


@cache
def pack_labels() -> Any:
    """The ``label_blocks`` of the requests ``:ids`` that are in a block, one per model: each
    request's key and time, and its row's latest label and label time as they now stand."""
    p = payloads.c
    at = key_of(p.block_key, p.block_pos)
    columns = {
        "model": p.model,
        "ts_min": sa.func.min(p.ts),
        "ts_max": sa.func.max(p.ts),
        "n": sa.func.count(),
        "keys": _packed(sa.func.int8send(at), at),
        "ts": _packed(float8(p.ts), at),
        "label_ts": _packed(float8(p.latest_label_ts), at),
        "labels": joined(sa.func.coalesce(p.latest_label, "null"), sa.literal(","), at),
    }
    ids = sa.bindparam("ids", type_=postgresql.ARRAY(sa.Text))
    rows = (
        sa.select(*(v.label(k) for k, v in columns.items()))
        .where(p.request_id == sa.func.any(ids), p.block_key.is_not(None))
        .group_by(p.model)
    )
    return sa.insert(label_blocks).from_select(list(columns), rows)


def write_label_blocks(conn: sa.Connection, ids: Iterable[str]) -> None:
    """After labels for ``ids`` were stored (in this transaction): the latest label of each of
    those requests that is already in a block, as it now stands in its row (the trigger's
    choice), into ``label_blocks`` (:func:`pack_labels`). A reader takes each request's entry
    with the latest label time, so the last state written wins whatever the writers' order."""
    conn.execute(pack_labels(), {"ids": sorted(set(ids))})
