"""Merging small blocks (PostgreSQL, :mod:`mlplatform.serving.payloads.compaction`): light
traffic writes one tiny block per request; merged, a window reads a few blocks and exactly the
same requests, labels and all, as the JSON path."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa
from tests.support.payload_blocks import NAMES, T0, compare, counts, expected, record

from mlplatform.serving.payloads import PayloadStore
from mlplatform.serving.payloads import store as store_module
from mlplatform.serving.payloads.compaction import LOCK, MOST, SPAN, runs
from mlplatform.stores.schema import label_blocks, payload_blocks

pytestmark = [pytest.mark.services, pytest.mark.usefixtures("writer_merges_held")]


def trickle(store: PayloadStore, ids: range, gap: float = 1.0) -> None:
    """Requests logged one at a time (each its own batch and block), every third labelled on
    its own after its block, and one label replaced: light traffic. Every fourth comes as the
    sink's two halves with a label between them, so its block carries its label."""
    for i in ids:
        rec = record(i, T0 + i * gap, 1 + i % 2)
        if i % 4 == 1:
            fields = {"request_id": rec.request_id, "model": "m", "variant": "stable"}
            store.merge_async(
                "request",
                {**fields, "ts": rec.ts, "endpoint": "predict", "n_instances": rec.n_instances}
                | {"request": rec.request},
            ).result()
            store.add_feedback(rec.request_id, 100.0 + i)
            store.merge_async(
                "response",
                {**fields, "ts": rec.ts + 0.001, "model_version": "1", "status": 200}
                | {"response": rec.response},
            ).result()
        else:
            store.log(rec)
        if i % 3 == 0:
            store.add_feedback(f"r{i:03d}", float(i))
    store.add_feedback(f"r{ids[0]:03d}", -1.0)


def spans(store: PayloadStore, table: sa.Table) -> list[tuple[float, float, int]]:
    c = table.c
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(c.ts_min, c.ts_max, c.n).order_by(c.id))]


def test_tiny_blocks_merge_into_few_and_read_the_same(pg_url: str) -> None:
    """60 one-request blocks and 21 one-label label blocks merge into one of each; the window,
    whole and cut through the middle, equals the JSON path before and after (labels included,
    the replaced one too). Fails if a merge loses or reorders a packed column, drops a
    block's labels (``""`` for none), or leaves the small blocks beside the merged one."""
    with PayloadStore(pg_url) as store:
        trickle(store, range(60))
        assert counts(store) == (60, 21, 60)
        windows = [(T0, T0 + 100), (T0 + 17.5, T0 + 41.2)]
        before = [store.numeric_window(a, b, "m", NAMES) for a, b in windows]
        assert store.compact() == 59 + 20
        assert counts(store) == (1, 1, 60)
        assert spans(store, payload_blocks) == [(T0, T0 + 59, 60)]
        for (a, b), old in zip(windows, before, strict=True):
            new = store.numeric_window(a, b, "m", NAMES)
            compare(new, expected(store, a, b))
            compare(new, old.assign(request_id=expected(store, a, b)["request_id"]))
        assert store.compact() == 0  # nothing small left to merge with


def test_a_merged_block_spans_at_most_span_seconds(pg_url: str) -> None:
    """Requests 100 s apart over 1,000 s merge into blocks of at most SPAN seconds each, so a
    window never reads a block that reaches far past its edges."""
    with PayloadStore(pg_url) as store:
        trickle(store, range(11), gap=100.0)
        store.compact()
        merged = spans(store, payload_blocks)
        window = (T0 + 250, T0 + 650)
        compare(store.numeric_window(*window, "m", NAMES), expected(store, *window))
    assert all(b - a <= SPAN for a, b, _ in merged)
    assert sum(n for _, _, n in merged) == 11 and 1 < len(merged) < 11


def test_prune_after_a_merge_keeps_exactly_the_newer_requests(pg_url: str) -> None:
    """A merged block straddling the cut-off hands its kept requests back to their rows."""
    with PayloadStore(pg_url) as store:
        trickle(store, range(40))
        store.compact()
        result = store.prune("m", T0 + 40, retention_days=3650, max_rows=25, keep_seconds=0)
        assert result.requests == 15
        got = store.numeric_window(T0, T0 + 100, "m", NAMES)
        compare(got, expected(store, T0, T0 + 100))
    assert sorted(set(got["feature.area"])) == [float(i) for i in range(15, 40)]


def test_one_merge_at_a_time(pg_url: str) -> None:
    """While another transaction holds the merge lock (another sink replica merging, or
    retention dropping blocks), a writer skips its turn and merges nothing."""
    with PayloadStore(pg_url) as store:
        trickle(store, range(5))
        with store.engine.connect() as conn, conn.begin():
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(LOCK)))
            assert store.compact() == 0
        assert store.compact() == 4 + 2  # 5 blocks into 1, 3 label blocks into 1


def test_the_writer_merges_on_its_own_when_idle(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no call to ``compact``: after EVERY seconds of quiet the writer merges by itself
    (EVERY shortened here to 0.2 s)."""
    monkeypatch.setattr(store_module, "EVERY", 0.2)
    with PayloadStore(pg_url) as store:
        trickle(store, range(8))
        deadline = time.monotonic() + 10
        while counts(store)[0] > 1 and time.monotonic() < deadline:
            threading.Event().wait(0.05)
        assert counts(store) == (1, 1, 8)
        store.log(record(8, T0 + 8))  # the writer still writes after merging
        compare(store.numeric_window(T0, T0 + 10, "m", NAMES), expected(store, T0, T0 + 10))


def test_runs_break_at_a_key_the_size_cap_and_the_span() -> None:
    """Runs are consecutive small blocks of one key within MOST requests and SPAN seconds;
    a run of one block is left alone."""
    a, b = ("m", "predict", "1", "L"), ("m", "predict", "2", "L")
    half = MOST // 2
    blocks = [
        (1, *a, 0.0, 1.0, half),
        (2, *a, 1.0, 2.0, half),  # exactly MOST with 1: still one run
        (3, *a, 2.0, 3.0, 1),  # over MOST: a new run
        (4, *a, 3.0, 4.0, 1),
        (5, *b, 4.0, 5.0, 1),  # another key
        (6, *a, 5.0, 6.0, 1),
        (7, *a, 5.0 + SPAN + 1, 7.0 + SPAN, 1),  # too far from 6
        (8, *a, 6.0 + SPAN, 8.0 + SPAN, 1),
    ]
    assert runs(blocks) == [[1, 2], [3, 4], [7, 8]]
    assert label_blocks.c.n is not None  # label blocks are merged by the same rule
