"""The payload log's writes as SQLAlchemy statements, built once per dialect.

Each takes one row of parameters, so the writer can run a batch of them as one
``executemany``. The two event upserts merge the halves of a KServe logger request/response
pair into one row (see :mod:`mlplatform.serving.sink`), whichever half arrives first.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

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
        latency = sa.case((old.response.is_not(None), _latency(old.ts, new.ts)))
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


@cache
def bulk_merge_half(half: Half) -> Any:
    """PostgreSQL: :func:`upsert_half` for many rows in ONE statement, each column passed as
    one array (``INSERT ... SELECT unnest(:request_id), unnest(:ts), ... ON CONFLICT ...``),
    which also marks the rows it completes for a block (``:batch``, and ``:block_pos`` one per
    row; :mod:`.blocks`). A request id twice in one call is an error (the writer then merges
    row by row, without blocks)."""
    fields = (*(REQUEST_FIELDS if half == "request" else RESPONSE_FIELDS), "block_pos")
    arrays = [
        sa.func.unnest(sa.bindparam(c, type_=postgresql.ARRAY(payloads.c[c].type))).label(c)
        for c in fields
    ]
    insert = insert_for("postgresql", payloads).from_select(list(fields), sa.select(*arrays))
    return _merge(insert, half, blocks=True)
