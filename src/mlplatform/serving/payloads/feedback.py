"""Ground truth from clients, first label wins: what the router and the payload sink store.

A label is stored for a request only if the request has none yet. The same label again is
accepted and changes nothing (a client may retry); another label is refused and recorded in
``feedback_rejected`` with its time and the label kept, so 30 flipped labels cannot rewrite
what the monitor reads, and leave a trace. A batch is stored whole or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa

from mlplatform.errors import RequestError, UnknownRequestError
from mlplatform.serving.payloads.blocks import write_label_blocks
from mlplatform.serving.payloads.statements import INSERT_REJECTED, STORED_LABELS
from mlplatform.stores.schema import payloads


@dataclass(frozen=True)
class FeedbackOutcome:
    """What one batch did: the labels stored now, and the ids refused (another label kept)."""

    stored: list[tuple[str, Any]]
    rejected: list[str]


def distinct_labels(items: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """One label per request id; a batch giving one id two different labels is a 400.

    >>> distinct_labels([("a", 1), ("a", 1.0), ("b", [0, 1])])
    {'a': 1, 'b': [0, 1]}
    """
    labels: dict[str, Any] = {}
    for rid, label in items:
        if rid in labels and labels[rid] != label:
            raise RequestError(f"request id {rid!r} is given two different labels in one batch")
        labels.setdefault(rid, label)
    return labels


def accept_feedback(
    conn: sa.Connection, insert: Any, items: Sequence[tuple[str, Any]], now: float
) -> FeedbackOutcome:
    """Store the first label of each request in ``items`` with ``insert`` (one ``feedback``
    row); unknown ids raise :class:`UnknownRequestError` and store nothing. With any conflict,
    only the conflicts are written (to ``feedback_rejected``), no label."""
    labels = distinct_labels(items)
    found = dict(list(conn.execute(STORED_LABELS, {"ids": sorted(labels)})))
    missing = sorted(rid for rid in labels if rid not in found)
    if missing:
        raise UnknownRequestError(missing)
    new = [(rid, label) for rid, label in labels.items() if found[rid] is None]
    rejected = [
        {"request_id": rid, "ts": now, "label": _text(label), "kept_label": found[rid]}
        for rid, label in labels.items()
        if found[rid] is not None and orjson.loads(found[rid]) != label
    ]
    if rejected:
        conn.execute(INSERT_REJECTED, rejected)
        return FeedbackOutcome([], [r["request_id"] for r in rejected])
    if new:
        rows = [{"request_id": rid, "ts": now, "label": _text(label)} for rid, label in new]
        conn.execute(insert, rows)
        if conn.dialect.name == "postgresql":
            write_label_blocks(conn, labels)
    return FeedbackOutcome(new, [])


def _text(label: Any) -> str:
    return orjson.dumps(label).decode()


def insert_feedback(
    conn: sa.Connection, stmt: Any, items: Sequence[tuple[str, Any]], now: float
) -> int:
    """Store every label of ``items`` with ``stmt`` (a newer label replaces the one the monitor
    reads): a trusted, in-process write; an unknown id raises :class:`UnknownRequestError` and
    stores nothing. The number stored."""
    ids = sorted({rid for rid, _ in items})
    found = {
        r[0]
        for r in conn.execute(
            sa.select(payloads.c.request_id).where(payloads.c.request_id.in_(ids))
        )
    }
    missing = [rid for rid in ids if rid not in found]
    if missing:
        raise UnknownRequestError(missing)
    rows = [
        {"request_id": rid, "ts": now, "label": orjson.dumps(label).decode()}
        for rid, label in items
    ]
    conn.execute(stmt, rows)
    if conn.dialect.name == "postgresql":
        write_label_blocks(conn, ids)
    return len(rows)
