"""The queries that read a window of the payload log in bulk (:mod:`.numeric` decodes them).

On PostgreSQL, :func:`block_query` has the server pack each block of requests (one endpoint,
model version and feature layout) into a few values; :func:`row_query` reads requests one by
one (every request on SQLite, which cannot pack bytes; on PostgreSQL only those without the
compact form, with their bodies).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import sqlalchemy as sa

from mlplatform.serving.payloads.compact import FEATURE_COLUMNS, PREDICTION_COLUMN
from mlplatform.serving.payloads.records import COLUMNS
from mlplatform.stores import bulk_read
from mlplatform.stores.schema import feedback, payloads

EMPTY_BYTES: sa.ColumnClause[Any] = sa.literal_column("''::bytea")
NAN: sa.ColumnClause[Any] = sa.literal_column("'NaN'::float8")


@dataclass(frozen=True)
class WindowQueries:
    """The queries of one window: packed blocks (PostgreSQL) and rows read one by one."""

    blocks: list[sa.Select[Any]]
    rows: sa.Select[Any]

    @property
    def all(self) -> list[sa.Select[Any]]:
        return [*self.blocks, self.rows]


def window_queries(since: float, until: float, model: str | None, slices: int) -> WindowQueries:
    """The queries of ``[since, until)``: ``slices`` consecutive equal spans packed by the
    server (PostgreSQL), and the rows without the compact form; ``slices=0`` reads every row
    one by one (SQLite, which cannot pack bytes)."""
    if slices == 0:
        return WindowQueries([], _in_window(row_query(), since, until, model))
    edges = [since + (until - since) * k / slices for k in range(slices)] + [until]
    blocks = [_in_window(block_query(), a, b, model) for a, b in pairwise(edges)]
    legacy = row_query().where(sa.not_(_compact()))
    return WindowQueries(blocks, _in_window(legacy, since, until, model))


def _in_window(query: sa.Select[Any], since: float, until: float, model: str | None) -> Any:
    """The rows of ``query`` in ``[since, until)`` (of ``model``) that are in no block."""
    query = query.where(
        payloads.c.ts >= since, payloads.c.ts < until, payloads.c.block_key.is_(None)
    )
    return query if model is None else query.where(payloads.c.model == model)


def _compact() -> sa.ColumnElement[bool]:
    """The row's compact form is complete (its predictions too, once it has a response)."""
    p = payloads.c
    return sa.and_(
        p.feature_layout.is_not(None),
        sa.or_(p.prediction_numbers.is_not(None), p.response.is_(None)),
    )


def _packed(value: Any) -> Any:
    return sa.func.string_agg(sa.func.coalesce(value, EMPTY_BYTES), EMPTY_BYTES)


def float8(column: Any) -> Any:
    """Big-endian float64 bytes of a column, NaN for NULL."""
    return sa.func.float8send(sa.func.coalesce(sa.cast(column, sa.Double), NAN))


def block_query() -> sa.Select[Any]:
    p = payloads.c
    return (
        sa.select(
            p.endpoint,
            p.model_version,
            p.feature_layout,
            _packed(float8(p.ts)),
            _packed(float8(p.status)),
            _packed(float8(p.latency_ms)),
            _packed(sa.func.int4send(p.feature_rows)),
            _packed(p.feature_numbers),
            _packed(sa.func.int4send(sa.func.coalesce(sa.func.length(p.prediction_numbers), 0))),
            _packed(p.prediction_numbers),
            sa.func.string_agg(sa.func.coalesce(p.feature_strings, ""), ""),
            sa.func.string_agg(sa.func.coalesce(p.latest_label, "null"), ","),
        )
        .where(_compact())
        .group_by(p.endpoint, p.model_version, p.feature_layout)
    )


def row_query() -> sa.Select[Any]:
    """One row per request: its block key, metadata, compact form and latest label, and a
    body only where its compact form is missing."""
    p = payloads.c
    return sa.select(
        p.endpoint,
        p.model_version,
        p.ts,
        p.status,
        p.latency_ms,
        *(p[c] for c in (*FEATURE_COLUMNS, PREDICTION_COLUMN)),
        sa.func.coalesce(p.latest_label, "null"),
        sa.case((p.feature_layout.is_(None), p.request)),
        sa.case((p.prediction_numbers.is_(None), p.response)),
    )


def requests_query(since: float, until: float, model: str | None) -> sa.Select[Any]:
    """The JSON path (:meth:`PayloadStore.requests`): every request in ``[since, until)``
    (of ``model``) with its bodies and its latest ``feedback`` label, oldest first; it reads
    neither the compact form nor blocks."""
    p = payloads.c
    latest = (
        sa.select(feedback.c.request_id, sa.func.max(feedback.c.ts).label("ts"))
        .group_by(feedback.c.request_id)
        .subquery()
    )
    joined = payloads.outerjoin(latest, latest.c.request_id == p.request_id).outerjoin(
        feedback,
        (feedback.c.request_id == latest.c.request_id) & (feedback.c.ts == latest.c.ts),
    )
    query = sa.select(*(p[c] for c in COLUMNS), feedback.c.label).select_from(joined)
    query = query.where(p.ts >= since, p.ts < until).order_by(p.ts, p.request_id)
    return query if model is None else query.where(p.model == model)


def read_in_one_snapshot(engine: sa.Engine, queries: list[Any]) -> Any:
    """The window's queries one after the other on one connection, in one snapshot: with the
    blocks written at ingestion each is short, and a connection costs more than it saves."""
    return bulk_read(engine, queries, parallel=False)
