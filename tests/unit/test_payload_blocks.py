"""The payload log's blocks (PostgreSQL, :mod:`mlplatform.serving.payloads.blocks`) read back by
``numeric_window``, against the JSON path (``PayloadStore.window``, which decodes each row's
bodies and never looks at a block), predictions and labels mapped through ``as_number``."""

from __future__ import annotations

import json
import random
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from typing import Any, cast

import pytest
import sqlalchemy as sa
from tests.support.payload_blocks import NAMES, T0, compare, counts, expected, gated, record

from mlplatform.errors import LabelConflictError
from mlplatform.serving.payloads import PayloadRecord, PayloadStore, as_number
from mlplatform.serving.payloads.statements import Half
from mlplatform.stores.schema import payload_blocks

pytestmark = [pytest.mark.services, pytest.mark.usefixtures("writer_merges_held")]
HALVES = {
    "request": ("request_id", "ts", "model", "variant", "endpoint", "n_instances", "request"),
    "response": ("request_id", "ts", "model", "variant", "model_version", "status", "response"),
}


@dataclass(frozen=True)
class Req:
    rec: PayloadRecord
    parts: tuple[str, ...]  # ("whole",), or the sink's halves (one only: never completed)
    labels: tuple[Any, ...]  # () none; (first,) stored once; (first, second) second wins
    accept: bool  # labels through accept_feedback: first wins, the second is refused


def make_requests(rng: random.Random, n: int = 320) -> list[Req]:
    out = []
    for i in range(n):
        k, error = rng.randint(1, 3), rng.random() < 0.08
        values: list[list[Any]] = [
            [round(rng.uniform(20, 200), 2), rng.randint(1, 6), rng.choice(["d1", 'ü "q"'])]
            for _ in range(k)
        ]
        if rng.random() < 0.04:
            values[0][1] = True  # the compact form cannot carry it: read from its row
        dicts = [dict(zip(NAMES, v, strict=True)) for v in values]
        preds: list[Any] = [round(rng.uniform(0, 9), 3) for _ in range(k)]
        preds = [[1 - p / 9, p / 9] for p in preds] if rng.random() < 0.15 else preds
        parts = rng.choice([("whole",), ("request", "response"), ("request", "response")])
        parts = (rng.choice(["request", "response"]),) if i % 61 == 17 else parts
        label: Any = rng.choice([round(rng.uniform(0, 9), 2), [float(j) for j in range(k)]])
        plan = rng.choice(["none", "none", "once", "once", "replace", "accept"])
        second = -1.0 - i if plan == "accept" else 99.0 + i
        labels = {"none": (), "once": (label,)}.get(plan, (label, second))
        ts, latency = T0 + 0.8 * i + rng.uniform(0, 0.3), rng.uniform(1, 40)  # ts distinct
        endpoint, version = rng.choice(["predict"] * 5 + ["infer"]), rng.choice("1112")
        req = json.dumps({"instances": dicts if rng.random() < 0.5 else values})
        resp = json.dumps({"error": "boom"} if error else {"predictions": preds})
        model, status = ("n" if i % 23 == 5 else "m"), (500 if error else 200)
        rec = PayloadRecord(
            f"r{i:03d}", ts, model, "stable", version, endpoint, status, latency, k, req, resp
        )
        out.append(Req(rec, parts, labels, plan == "accept"))
    return out


def submit(store: PayloadStore, r: Req, part: str) -> Future[None]:
    """Log ``r`` whole, or one of its halves as the sink merges it (the response ends later)."""
    if part == "whole":
        return store.log_async(r.rec)
    row, half = asdict(r.rec), cast(Half, part)
    row["ts"] += row["latency_ms"] / 1000 if half == "response" else 0.0
    return store.merge_async(half, {k: row[k] for k in HALVES[half]})


def test_random_interleavings_equal_the_json_path(pg_url: str) -> None:
    """Whole records and the sink's halves (either first, interleaved, a row completed batches
    after its first half), labels stored before the second half, after it, replaced or accepted
    (first wins), read back as the JSON path over the whole range and a window cutting blocks.
    Fails on a block column out of request order, a label stored before completion missing from
    its block, a later label not read from ``label_blocks`` (or an older one winning), a block
    not cut at the window's edges, a completing half writing no block, another model's block."""
    rng = random.Random(20240611)
    reqs = make_requests(rng)
    actions = [(r, part) for r in reqs for part in r.parts]
    rng.shuffle(actions)
    barriers = {i for i in range(len(actions)) if rng.random() < 0.03}
    submitted: dict[str, list[Future[None]]] = {}
    labelled: dict[str, int] = {}  # labels stored so far
    early: list[str] = []  # labels queued before their request was known to be complete
    jobs: list[Future[Any]] = []
    refused: list[Future[Any]] = []
    with PayloadStore(pg_url) as store, ThreadPoolExecutor(1) as pool:

        def label_round() -> None:
            """Queue the labels due for requests whose row exists (one worker: in order)."""
            due: dict[bool, list[tuple[str, Any]]] = {False: [], True: []}  # by accept
            for r in reqs:
                rid = r.rec.request_id
                futures, done = submitted.get(rid, []), labelled.get(rid, 0)
                if done >= len(r.labels) or not any(f.done() for f in futures):
                    continue
                if done == 0:
                    complete = len(futures) == len(r.parts) and all(f.done() for f in futures)
                    early.extend([] if complete else [rid])
                    due[r.accept].append((rid, r.labels[0]))
                elif r.accept:
                    refused.append(pool.submit(store.accept_feedback, [(rid, r.labels[1])]))
                else:
                    due[False].append((rid, r.labels[1]))
                labelled[rid] = done + 1
            if due[False]:
                jobs.append(pool.submit(store.add_feedback_many, due[False]))
            if due[True]:
                jobs.append(pool.submit(store.accept_feedback, due[True]))

        def every() -> list[Future[None]]:
            return [f for fs in submitted.values() for f in fs]

        gate = gated(store)  # the actions between two barriers: one batch, with the labels due
        for i, (r, part) in enumerate(actions):
            submitted.setdefault(r.rec.request_id, []).append(submit(store, r, part))
            if i in barriers:
                gate.set()
                wait(rng.sample(every(), len(every()) // 2))
                label_round()
                gate = gated(store)
        gate.set()
        wait(every())
        label_round()
        label_round()
        pool.shutdown(wait=True)
        assert [f.exception() for f in [*jobs, *every()]] == [None] * (len(jobs) + len(every()))
        assert all(isinstance(f.exception(), LabelConflictError) for f in refused)
        blocks, label_rows, in_blocks = counts(store)  # so it cannot pass reading rows only
        assert blocks > 0 and label_rows > 0 and in_blocks > len(reqs) // 2 and early and refused
        for since, until in ((T0, T0 + 300), (T0 + 37.5, T0 + 211.3)):
            compare(store.numeric_window(since, until, "m", NAMES), expected(store, since, until))
        want = expected(store, T0, T0 + 300)
        first = want[want["instance"] == 0].set_index("request_id")["label"]
        for r in reqs:  # the oracle itself: the latest label, or the first accepted one
            if r.rec.model == "m" and r.labels and r.parts != ("response",):  # else 1 instance
                y = r.labels[0] if r.accept else r.labels[-1]
                assert first[r.rec.request_id] == as_number(y[0] if isinstance(y, list) else y)
        assert {"1", "2"} <= set(want["model_version"]) and {200, 500} <= set(want["status"])


def test_a_half_delivered_again_after_its_block_changes_nothing(pg_url: str) -> None:
    """The agent delivers at least once: a half merged again for a request already in a block
    (with another prediction, or other features) leaves its row and its block as they were.
    Fails if the merge overwrites a blocked row (the JSON path would then read the new body
    while the block keeps the old one) or writes a second block for it."""
    req: dict[str, Any] = {"request_id": "a", "ts": T0 + 1, "model": "m", "variant": "stable"}
    resp = {**req, "ts": T0 + 1.01, "model_version": "1", "status": 200}
    req |= {"endpoint": "predict", "n_instances": 1}
    with PayloadStore(pg_url) as store:
        store.merge_async("request", {**req, "request": '{"instances": [[1.0, 2, "x"]]}'}).result()
        store.merge_async("response", {**resp, "response": '{"predictions": [3.0]}'}).result()
        assert counts(store) == (1, 0, 1)
        store.merge_async("response", {**resp, "response": '{"predictions": [7.0]}'}).result()
        store.merge_async("request", {**req, "request": '{"instances": [[5.0, 6, "y"]]}'}).result()
        want = expected(store, T0, T0 + 10)
        got = store.numeric_window(T0, T0 + 10, "m", NAMES)
        assert counts(store) == (1, 0, 1)
    assert want["prediction"].tolist() == [3.0] and want["feature.area"].tolist() == [1.0]
    assert got["latency_ms"].tolist() == pytest.approx([10.0])
    compare(got, want)


def test_prune_through_a_straddling_block(pg_url: str) -> None:
    """200 requests 1 s apart, each 64 out of order in one batch (blocks [0, 64), [64, 128),
    [128, 192), [192, 200)), labelled after, cut to the newest 90 (cut-off 110): the straddling
    block's kept requests are read from their rows, with their labels. Fails if a straddling
    block survives the prune (pruned requests read again) or goes without handing its kept
    requests back to their rows (kept requests lost), or if a kept block is dropped."""
    rng = random.Random(7)
    chunks = [range(c, min(c + 64, 200)) for c in range(0, 200, 64)]
    order = [i for chunk in chunks for i in rng.sample(chunk, len(chunk))]
    with PayloadStore(pg_url, batch_max=64) as store:
        gate = gated(store)
        futures = [store.log_async(record(i, T0 + i, 1 + i % 2)) for i in order]
        gate.set()
        wait(futures)
        store.add_feedback_many([(f"r{i:03d}", float(i) * 10) for i in range(0, 200, 3)])
        store.add_feedback_many([(f"r{i:03d}", [1.0] * (1 + i % 2)) for i in range(1, 200, 9)])
        assert counts(store) == (4, 2, 200)
        result = store.prune("m", T0 + 200, retention_days=3650, max_rows=90, keep_seconds=0)
        assert result.cutoff == T0 + 110 and result.requests == 110
        with store.engine.connect() as conn:
            early = sa.select(sa.func.count()).where(payload_blocks.c.ts_min < result.cutoff)
            assert conn.execute(early).scalar_one() == 0
        assert counts(store) == (2, 2, 72)  # 110..127 are read from their rows again
        want = expected(store, T0, T0 + 1000)
        got = store.numeric_window(T0, T0 + 1000, "m", NAMES)
    compare(got, want)
    per_request = got[got["instance"] == 0]
    assert per_request["latency_ms"].tolist() == [float(i) for i in range(110, 200)]
    labels = dict(zip(per_request["latency_ms"], per_request["label"], strict=True))
    assert all(labels[float(i)] == i * 10 for i in range(110, 200) if i % 3 == 0)
    assert all(labels[float(i)] == 1.0 for i in range(110, 200) if i % 9 == 1)


def test_a_later_label_is_read_from_a_label_block(pg_url: str) -> None:
    """One block of 10 requests, then labels for 3 of them (one label block), then a label
    replaced twice: the window reads each request's newest label. Fails if labels stored after
    the block are not written to ``label_blocks`` or not applied on read (NaN), or if the
    reader takes the first label block's entry instead of the latest."""
    with PayloadStore(pg_url) as store:
        gate = gated(store)
        futures = [store.log_async(record(i, T0 + i)) for i in range(10)]
        gate.set()
        wait(futures)
        assert counts(store) == (1, 0, 10)
        store.add_feedback_many([("r002", 2.0), ("r005", [0.75]), ("r007", 7)])
        assert counts(store)[1] == 1

        def labels() -> list[float]:
            got = store.numeric_window(T0, T0 + 10, "m", NAMES)
            compare(got, expected(store, T0, T0 + 10))
            return [float(x) for x in got["label"].fillna(-1)]

        assert labels() == [-1, -1, 2.0, -1, -1, 0.75, -1, 7.0, -1, -1]
        store.add_feedback_many([("r005", 5.5)])
        store.add_feedback_many([("r005", 6.5)])
        assert counts(store)[1] == 3
        assert labels() == [-1, -1, 2.0, -1, -1, 6.5, -1, 7.0, -1, -1]
