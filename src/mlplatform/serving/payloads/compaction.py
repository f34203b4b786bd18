"""Merging small blocks (PostgreSQL): what keeps a window a few hundred blocks at any traffic.

A block holds the complete requests of one writer batch (:mod:`.blocks`), so its size follows
the load: hundreds of requests when the sink is busy, one or two when requests trickle in and
each is committed on its own. Left so, an hour of light traffic would be read as thousands of
tiny blocks, no better than rows. So every :data:`EVERY` seconds (and whenever it has been idle
that long) each writer merges the small blocks (fewer than :data:`SMALL` requests) of one
model, endpoint, model version and layout, oldest first, into blocks of at most :data:`MOST`
requests spanning at most :data:`SPAN` seconds (a window then reads at most two blocks past
its edges). The server concatenates the packed columns in the order of the blocks' first
times; the requests' rows and keys are untouched, so label blocks still name them.

One merge at a time in the whole database: a writer that cannot take the advisory lock
:data:`LOCK` skips its turn, and retention takes the same lock before it drops blocks
(:func:`.retention.drop_blocks`), so a merged block never outlives requests pruned under it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from mlplatform.serving.payloads.blocks import joined
from mlplatform.serving.payloads.window_sql import EMPTY_BYTES
from mlplatform.stores.schema import label_blocks, payload_blocks

#: Seconds between two merges of one writer.
EVERY = 10.0
#: A block with fewer requests is merged (the partial index ``payload_blocks_small``).
SMALL = 256
#: Requests in a merged block, at most.
MOST = 4096
#: Seconds from a merged block's first request to its last, at most.
SPAN = 300.0
#: Small blocks looked at in one merge.
LIMIT = 20_000
#: The advisory lock of merges and of retention's block drops.
LOCK = 0x6D6C70_0003


def runs(candidates: Sequence[Any]) -> list[list[int]]:
    """Ids of the blocks to merge, run by run: consecutive small blocks of one key (given in
    key, then id order: ``id``, key..., ``ts_min``, ``ts_max``, ``n``) up to :data:`MOST`
    requests and :data:`SPAN` seconds; runs of one block are left alone.

    >>> key = ("m", "predict", "1", "l")
    >>> runs([(1, *key, 0.0, 1.0, 200), (2, *key, 2.0, 3.0, 200), (3, *key, 4.0, 4.0, 9000)])
    [[1, 2]]
    """
    out: list[list[int]] = []
    run: list[int] = []
    key, start, end, total = None, 0.0, 0.0, 0
    for block_id, *row_key, ts_min, ts_max, n in candidates:
        wider = max(end, ts_max) - min(start, ts_min)
        if tuple(row_key) != key or total + n > MOST or wider > SPAN:
            if len(run) > 1:
                out.append(run)
            run, key, start, end, total = [], tuple(row_key), ts_min, ts_max, 0
        run.append(block_id)
        start, end, total = min(start, ts_min), max(end, ts_max), total + n
    if len(run) > 1:
        out.append(run)
    return out


def _key(table: sa.Table) -> tuple[Any, ...]:
    """The columns a run shares: a model's label blocks, or a model's blocks of one endpoint,
    model version and layout."""
    c = table.c
    if table is label_blocks:
        return (c.model,)
    return (c.model, c.endpoint, c.model_version, c.feature_layout)


@cache
def merge_statement(table: sa.Table) -> Any:
    """Delete the blocks of ``unnest(:ids, :runs)`` and insert one per run in their place,
    with the run's last id (so the blocks keep the order they were written in): the packed
    columns concatenated in id order."""
    chosen = (
        sa.func.unnest(
            sa.bindparam("ids", type_=postgresql.ARRAY(sa.BigInteger)),
            sa.bindparam("runs", type_=postgresql.ARRAY(sa.Integer)),
        )
        .table_valued("id", "run")
        .render_derived(name="chosen")
    )
    gone = (
        sa.delete(table).where(table.c.id == sa.func.any(sa.bindparam("ids"))).returning(*table.c)
    )
    g = gone.cte("gone")
    at = chosen.c.run
    order = g.c.id
    columns: dict[str, Any] = {
        "id": sa.func.max(g.c.id),
        **{c.name: g.c[c.name] for c in _key(table)},
        "ts_min": sa.func.min(g.c.ts_min),
        "ts_max": sa.func.max(g.c.ts_max),
        "n": sa.func.sum(g.c.n),
    }
    for column in table.c:
        if isinstance(column.type, sa.LargeBinary):
            columns[column.name] = joined(g.c[column.name], EMPTY_BYTES, order)
    if table is label_blocks:
        columns["labels"] = joined(g.c.labels, sa.literal(","), order)
    else:
        nulls = sa.func.rtrim(sa.func.repeat("null,", g.c.n), ",")  # a block without labels
        some = joined(sa.case((g.c.labels == "", nulls), else_=g.c.labels), sa.literal(","), order)
        columns["labels"] = sa.case((sa.func.bool_and(g.c.labels == ""), ""), else_=some)
        columns["feature_strings"] = joined(g.c.feature_strings, sa.literal(""), order)
    rows = (
        sa.select(*(v.label(k) for k, v in columns.items()))
        .select_from(g.join(chosen, chosen.c.id == g.c.id))
        .group_by(at, *(g.c[c.name] for c in _key(table)))
    )
    return sa.insert(table).from_select(list(columns), rows).add_cte(g)


def _compact(conn: sa.Connection, table: sa.Table) -> int:
    c = table.c
    key = _key(table)
    candidates = conn.execute(
        sa.select(c.id, *key, c.ts_min, c.ts_max, c.n)
        .where(c.n < sa.literal_column(str(SMALL)))  # a literal: the partial index's
        .order_by(*key, c.id)
        .limit(LIMIT)
    ).all()
    chosen = runs(candidates)
    if not chosen:
        return 0
    ids = [i for run in chosen for i in run]
    numbers = [k for k, run in enumerate(chosen) for _ in run]
    conn.execute(merge_statement(table), {"ids": ids, "runs": numbers})
    return len(ids) - len(chosen)


def compact_blocks(conn: sa.Connection) -> int:
    """Merge the small blocks and label blocks (in the caller's transaction); the number of
    blocks merged away, 0 when another writer holds :data:`LOCK`."""
    if not conn.execute(sa.select(sa.func.pg_try_advisory_xact_lock(LOCK))).scalar_one():
        return 0
    return _compact(conn, payload_blocks) + _compact(conn, label_blocks)
