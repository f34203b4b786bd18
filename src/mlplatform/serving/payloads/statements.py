"""The payload log's writes as SQLAlchemy statements, built once per dialect.

Each takes one row of parameters, so the writer can run a batch of them as one
``executemany``. The two event upserts merge the halves of a KServe logger request/response
pair into one row (see :mod:`mlplatform.serving.sink`), whichever half arrives first. On
PostgreSQL the bulk forms take a whole batch as one JSON parameter (:func:`json_rows`): the
halves by kind, and the requests whose two halves are both in the batch as one row each.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from mlplatform.serving.payloads.compact import FEATURE_COLUMNS, PREDICTION_COLUMN
from mlplatform.stores import greatest, insert_for
from mlplatform.stores.schema import feedback, feedback_rejected, payloads

Half = Literal["request", "response"]
REQUEST_FIELDS = (
    *("request_id", "ts", "model", "variant", "endpoint", "n_instances", "request"),
    *FEATURE_COLUMNS,
)
RESPONSE_FIELDS = (
    *("request_id", "ts", "model", "variant", "model_version", "status", "response"),
    PREDICTION_COLUMN,
)


#: One ``payloads`` row (a repeated request id is an IntegrityError).
INSERT_PAYLOAD = sa.insert(payloads)
#: One refused label (``request_id``, ``ts``, ``label``, ``kept_label``), for the audit.
INSERT_REJECTED = sa.insert(feedback_rejected)
#: The stored label (JSON text, or None) of each request among ``:ids``, its row locked until
#: the transaction ends (PostgreSQL), so two writers cannot both store a first label.
STORED_LABELS = (
    sa.select(payloads.c.request_id, payloads.c.latest_label)
    .where(payloads.c.request_id.in_(sa.bindparam("ids", expanding=True)))
    .order_by(payloads.c.request_id)
    .with_for_update()
)


@cache
def upsert_feedback(dialect: str) -> Any:
    """One ``feedback`` label; the same (request id, time) again replaces it."""
    stmt = insert_for(dialect, feedback)
    return stmt.on_conflict_do_update(
        index_elements=["request_id", "ts"], set_={"label": stmt.excluded.label}
    )


def _latency(later: sa.ColumnElement[Any], earlier: sa.ColumnElement[Any]) -> Any:
    return greatest(later - earlier, sa.literal(0.0)) * 1000


def _merge(stmt: Any, half: Half, blocks: bool = False) -> Any:
    """``stmt`` merging one half into its row; a row already in a block is final and left as
    it is (:mod:`.blocks`). With ``blocks``, a row this half completes gets ``block_key`` =
    ``:batch`` and ``block_pos`` from the statement's rows."""
    new, old = stmt.excluded, payloads.c
    if half == "request":
        keep = {c: new[c] for c in REQUEST_FIELDS[1:]}
        latency = sa.case(
            # delivered again: the row's time is already the request's, its latency right
            (old.request.is_not(None), old.latency_ms),
            (old.response.is_not(None), _latency(old.ts, new.ts)),
        )
        completes = sa.and_(
            old.response.is_not(None),
            old.prediction_numbers.is_not(None),
            new.feature_layout.is_not(None),
        )
    else:
        keep = {c: new[c] for c in ("model_version", "status", "response", PREDICTION_COLUMN)}
        latency = sa.case((old.request.is_not(None), _latency(new.ts, old.ts)))
        completes = sa.and_(
            old.request.is_not(None),
            old.feature_layout.is_not(None),
            sa.or_(new[PREDICTION_COLUMN].is_not(None), new.response.is_(None)),
        )
    if blocks:
        batch = sa.bindparam("batch", type_=sa.BigInteger)
        keep |= {"block_key": sa.case((completes, batch)), "block_pos": new.block_pos}
    return stmt.on_conflict_do_update(
        index_elements=["request_id"],
        set_={**keep, "latency_ms": latency},
        where=old.block_key.is_(None),
    )


@cache
def upsert_half(dialect: str, half: Half) -> Any:
    """Merge one event into its request's row. Whichever half comes first creates the row with
    its own time in ``ts``; the request half then sets ``ts`` to the request's time, and the
    second half sets ``latency_ms`` = response time − request time (never negative)."""
    return _merge(insert_for(dialect, payloads), half)


def json_rows(fields: tuple[str, ...], name: str) -> dict[str, Any]:
    """PostgreSQL: the rows of the JSON array bound to ``:name`` as a table of ``fields``,
    typed as in ``payloads`` (``response_ts`` a float; binary columns travel as hex text and are
    decoded). One text parameter carries the whole batch, which the server parses: an array
    parameter per column would be dumped by the driver value by value, in Python, and cost the
    writer more than the server's work (:func:`rows_param` builds the parameter)."""
    binary = {c for c in fields if isinstance(_column_type(c), sa.LargeBinary)}
    columns = [sa.column(c, sa.Text() if c in binary else _column_type(c)) for c in fields]
    rows = sa.cast(sa.bindparam(name, type_=sa.Text), postgresql.JSON)
    table = sa.func.json_to_recordset(rows).table_valued(*columns)
    r = table.render_derived(name=f"{name}_rows", with_types=True)
    return {c: sa.func.decode(r.c[c], "hex") if c in binary else r.c[c] for c in fields}


def _column_type(name: str) -> Any:
    return payloads.c["ts" if name == "response_ts" else name].type


def rows_param(rows: list[dict[str, Any]]) -> str:
    """``rows`` as the JSON text :func:`json_rows` reads (bytes as hex)."""
    return orjson.dumps(rows, default=_hex).decode()


def _hex(value: Any) -> str:
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


@cache
def bulk_merge_half(half: Half) -> Any:
    """PostgreSQL: :func:`upsert_half` for many rows in ONE statement, the rows passed as one
    JSON parameter (``:requests`` or ``:responses``, :func:`json_rows`), which also marks the
    rows it completes for a block (``:batch``, and each row's ``block_pos``; :mod:`.blocks`).
    A request id twice in one call is an error (the writer then merges row by row, without
    blocks)."""
    fields = (*(REQUEST_FIELDS if half == "request" else RESPONSE_FIELDS), "block_pos")
    insert = insert_for("postgresql", payloads).from_select(
        list(fields),
        sa.select(*(v.label(k) for k, v in json_rows(fields, f"{half}s").items())),
    )
    return _merge(insert, half, blocks=True)


#: The columns a request's two halves set together (:func:`bulk_merge_pair`).
PAIR_FIELDS = (*REQUEST_FIELDS, *RESPONSE_FIELDS[4:], "block_pos")


@cache
def bulk_merge_pair() -> Any:
    """PostgreSQL: both halves of each request at once, as one row of :data:`PAIR_FIELDS` and
    the response's time ``response_ts``, for many requests in ONE statement (``:pairs``). The
    row it writes is the one the two halves' upserts (:func:`upsert_half`) would leave, in
    either order: the request's time, model and variant, the response's columns, the latency
    between the two, and a block (``:batch``) if its compact form is whole; a row already in
    a block is left as it is."""
    r = json_rows((*PAIR_FIELDS, "response_ts"), "pairs")
    batch = sa.bindparam("batch", type_=sa.BigInteger)
    completes = sa.and_(
        r["request"].is_not(None),
        r["feature_layout"].is_not(None),
        sa.or_(r[PREDICTION_COLUMN].is_not(None), r["response"].is_(None)),
    )
    values = {
        **{c: r[c] for c in PAIR_FIELDS},
        "latency_ms": _latency(r["response_ts"], r["ts"]),
        "block_key": sa.case((completes, batch)),
    }
    select = sa.select(*(v.label(k) for k, v in values.items()))
    insert = insert_for("postgresql", payloads).from_select(list(values), select)
    return insert.on_conflict_do_update(
        index_elements=["request_id"],
        set_={c: insert.excluded[c] for c in list(values)[1:]},
        where=payloads.c.block_key.is_(None),
    )
