"""Payload retention: the log keeps a model's requests for ``serve.payload_retention_days``
and at most ``serve.payload_max_rows`` of them (``mlplatform payloads prune``, with the
model's config; a daily CronJob per model on the cluster). A pruned request goes with its
feedback, and with the labels refused for it (``feedback_rejected``).

Rows go oldest first, in batches of :data:`BATCH` per transaction, so the sink's writers
never wait long for a lock. A row-count cut keeps every row logged at the boundary's instant
(the log may hold a few more than the cap). Pruning inside the monitor's reach (its window
plus lag) is refused: the next monitor run would judge a window with its rows missing.

Blocks (:mod:`.blocks`) go first, in one transaction: a block that straddles the cut-off hands
its remaining requests back to their rows (read one by one from then on), and every block
with a request before the cut-off is deleted, with the label blocks wholly before it. A reader
during a prune thus sees the requests before the cut-off as gone a little early, never twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa

from mlplatform.serving.payloads.blocks import key_of
from mlplatform.serving.payloads.compaction import LOCK
from mlplatform.stores.schema import (
    feedback,
    feedback_rejected,
    label_blocks,
    payload_blocks,
    payloads,
)

#: Requests deleted per transaction.
BATCH = 5000


@dataclass(frozen=True)
class PruneResult:
    """What one prune deleted, and the cut-off it applied (Unix seconds, exclusive)."""

    requests: int
    labels: int
    cutoff: float | None


def age_cutoff(now: float, retention_days: float) -> float:
    return now - retention_days * 86_400.0


def count_cutoff(conn: sa.Connection, model: str, max_rows: int) -> float | None:
    """The ``ts`` below which ``model``'s rows exceed ``max_rows`` (newest kept), None if
    they do not."""
    query = (
        sa.select(payloads.c.ts)
        .where(payloads.c.model == model)
        .order_by(payloads.c.ts.desc(), payloads.c.request_id.desc())
        .offset(max_rows - 1)
        .limit(1)
    )
    return conn.execute(query).scalar_one_or_none()


def delete_batch(conn: sa.Connection, model: str, cutoff: float) -> tuple[int, int]:
    """Delete up to :data:`BATCH` of ``model``'s oldest requests logged before ``cutoff`` and
    their labels; (requests, labels) deleted."""
    ids: Any = (
        sa.select(payloads.c.request_id)
        .where(payloads.c.model == model, payloads.c.ts < cutoff)
        .order_by(payloads.c.ts)
        .limit(BATCH)
    )
    chosen = [r[0] for r in conn.execute(ids)]
    if not chosen:
        return 0, 0
    labels = conn.execute(sa.delete(feedback).where(feedback.c.request_id.in_(chosen))).rowcount
    conn.execute(sa.delete(feedback_rejected).where(feedback_rejected.c.request_id.in_(chosen)))
    done = conn.execute(sa.delete(payloads).where(payloads.c.request_id.in_(chosen))).rowcount
    return int(done), int(labels)


def drop_blocks(conn: sa.Connection, model: str, cutoff: float) -> int:
    """Delete ``model``'s blocks with a request before ``cutoff``, after handing the requests
    of a straddling block from ``cutoff`` on back to their rows; and its label blocks wholly
    before ``cutoff``. The number of blocks deleted."""
    if conn.dialect.name == "postgresql":  # no merge of blocks meanwhile (.compaction)
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(LOCK)))
    b, p = payload_blocks.c, payloads.c
    old = conn.execute(sa.select(b["keys"], b.ts_max).where(b.model == model, b.ts_min < cutoff))
    straddling = [(np.frombuffer(keys, ">i8"), ts_max) for keys, ts_max in old if ts_max >= cutoff]
    if straddling:
        keys = np.concatenate([k for k, _ in straddling]).tolist()
        conn.execute(
            sa.update(payloads)
            .where(
                p.model == model,
                p.ts >= cutoff,
                p.ts <= max(t for _, t in straddling),
                key_of(p.block_key, p.block_pos).in_(keys),
            )
            .values(block_key=None, block_pos=None)
        )
    done = conn.execute(
        sa.delete(payload_blocks).where(b.model == model, b.ts_min < cutoff)
    ).rowcount
    lab = label_blocks.c
    conn.execute(sa.delete(label_blocks).where(lab.model == model, lab.ts_max < cutoff))
    return int(done)
