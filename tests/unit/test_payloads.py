"""The payload log on SQLite and PostgreSQL: round trip, batched writes, concurrent writers,
feedback joins, decoding."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import orjson
import pytest
import sqlalchemy as sa
from tests.support.services import store_backends, store_database

from mlplatform.errors import DuplicateRequestError, PayloadLogError, UnknownRequestError
from mlplatform.serving.payloads import (
    PayloadRecord,
    PayloadStore,
    decode_instances,
    decode_predictions,
)
from mlplatform.serving.payloads import store as payload_store_module
from mlplatform.serving.sink import REQUEST, RESPONSE, event_row, read_event


@pytest.fixture(params=store_backends())
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with store_database(request.param, tmp_path, "payloads.db") as u:
        yield u


@pytest.fixture()
def store(url: str) -> Iterator[PayloadStore]:
    with PayloadStore(url) as s:
        yield s


def record(rid: str, ts: float = 100.0, variant: str = "stable", **kw: object) -> PayloadRecord:
    base: dict[str, object] = {
        "request_id": rid,
        "ts": ts,
        "model": "house-price",
        "variant": variant,
        "model_version": "3",
        "endpoint": "predict",
        "status": 200,
        "latency_ms": 2.5,
        "n_instances": 2,
        "request": orjson.dumps({"instances": [[1.0, 2.0], [3.0, 4.0]]}).decode(),
        "response": orjson.dumps({"predictions": [10.0, 20.0], "model_version": "3"}).decode(),
    }
    return PayloadRecord(**(base | kw))  # type: ignore[arg-type]


def test_round_trip(store: PayloadStore) -> None:
    store.log(record("a"))
    rows = store.requests(0, 1e12)
    assert store.count() == 1
    got = rows.iloc[0].to_dict()
    want = record("a")
    for col in ("request_id", "ts", "model", "variant", "model_version", "status", "request"):
        assert got[col] == getattr(want, col)
    assert got["label"] is None and got["error"] is None


def test_rows_survive_reopening(url: str) -> None:
    with PayloadStore(url) as s:
        futures = [s.log_async(record(f"r{i}")) for i in range(50)]
    assert all(f.done() and f.exception() is None for f in futures)
    with PayloadStore(url) as s:
        assert s.count() == 50


def test_many_threads_lose_no_row(store: PayloadStore) -> None:
    n_threads, per_thread = 16, 150
    errors: list[BaseException] = []

    def write(t: int) -> None:
        try:
            for i in range(per_thread):
                store.log(record(f"t{t}-{i}", ts=time.time()))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(t,)) for t in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.count() == n_threads * per_thread
    want = {f"t{t}-{i}" for t in range(n_threads) for i in range(per_thread)}
    assert store.ids() == want


def test_duplicate_id_fails_alone(store: PayloadStore) -> None:
    store.log(record("a"))
    futures = [store.log_async(record("b")), store.log_async(record("a"))]
    futures.append(store.log_async(record("c")))
    assert futures[0].result() is None and futures[2].result() is None
    with pytest.raises(DuplicateRequestError, match="'a' is already"):
        futures[1].result()
    assert store.ids() == {"a", "b", "c"}


def test_window_decodes_instances_and_joins_feedback(
    store: PayloadStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.log(record("a", ts=100.0))
    store.log(record("b", ts=101.0, variant="canary"))
    store.log(record("late", ts=500.0))
    clock = iter([1000.0, 1000.0, 2000.0])  # the labels' times, stated (not the wall clock's)
    monkeypatch.setattr(payload_store_module, "time", SimpleNamespace(time=lambda: next(clock)))
    store.add_feedback("a", [11.0, 19.0])
    store.add_feedback_many([("b", [1.0, 2.0])])
    store.add_feedback("b", [9.0, 21.0])  # the latest label wins
    w = store.window(100.0, 200.0, feature_names=["area", "rooms"])
    assert list(w["request_id"]) == ["a", "a", "b", "b"]
    assert list(w["instance"]) == [0, 1, 0, 1]
    assert list(w["feature.area"]) == [1.0, 3.0, 1.0, 3.0]
    assert list(w["prediction"]) == [10.0, 20.0, 10.0, 20.0]
    assert list(w["label"]) == [11.0, 19.0, 9.0, 21.0]
    assert list(w["variant"]) == ["stable", "stable", "canary", "canary"]


def test_window_filters_model_and_keeps_undecodable_requests(store: PayloadStore) -> None:
    store.log(record("a", model="other"))
    store.log(record("bad", request="{not json", response=None, status=400, error="malformed"))
    w = store.window(0, 1e12, model="house-price")
    assert list(w["request_id"]) == ["bad"]
    assert np.isnan(w["prediction"].iloc[0]) and w["status"].iloc[0] == 400


def test_unknown_feedback_id_is_a_clear_error_and_stores_nothing(store: PayloadStore) -> None:
    store.log(record("a"))
    with pytest.raises(UnknownRequestError, match=r"\['nope'\]") as info:
        store.add_feedback_many([("a", 1.0), ("nope", 2.0)])
    assert info.value.missing == ["nope"]
    assert store.requests(0, 1e12)["label"].iloc[0] is None


def test_closed_store_refuses_writes(url: str) -> None:
    s = PayloadStore(url)
    s.close()
    with pytest.raises(PayloadLogError, match="closed"):
        s.log(record("a"))


def test_decoding_v1_and_v2_bodies() -> None:
    v2_in = {
        "inputs": [
            {"name": "area", "shape": [2], "datatype": "FP64", "data": [50.0, 80.0]},
            {"name": "district", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]},
        ]
    }
    assert decode_instances(orjson.dumps(v2_in).decode()) == [
        {"area": 50.0, "district": "a"},
        {"area": 80.0, "district": "b"},
    ]
    matrix = {"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP64", "data": [1, 2, 3, 4]}]}
    assert decode_instances(orjson.dumps(matrix).decode()) == [[1, 2], [3, 4]]
    v2_out = {"outputs": [{"name": "p", "shape": [2, 1], "datatype": "FP64", "data": [0.5, 0.7]}]}
    assert decode_predictions(orjson.dumps(v2_out).decode()) == [0.5, 0.7]
    assert decode_predictions('{"predictions": [[0.2, 0.8]]}') == [[0.2, 0.8]]
    assert decode_instances("{oops") is None and decode_predictions(None) is None
    bad_shape = {"inputs": [{"name": "x", "shape": [3], "datatype": "FP64", "data": [1, 2]}]}
    assert decode_instances(orjson.dumps(bad_shape).decode()) is None


def _hold_writer(store: PayloadStore) -> threading.Event:
    """Park the writer thread in a job until the returned event is set: whatever is queued
    meanwhile becomes its next batch."""
    running, release = threading.Event(), threading.Event()

    def hold(conn: sa.Connection) -> None:
        running.set()
        release.wait(30)

    store.transaction(hold)
    assert running.wait(30)
    return release


def test_a_batch_is_one_transaction_with_one_executemany(store: PayloadStore) -> None:
    inserts: list[bool] = []
    commits: list[int] = []

    def seen(conn, cursor, statement, params, context, many):  # type: ignore[no-untyped-def]
        if statement.lstrip().startswith("INSERT INTO payloads"):
            inserts.append(many)

    sa.event.listen(store.engine, "before_cursor_execute", seen)
    release = _hold_writer(store)
    sa.event.listen(store.engine, "commit", lambda conn: commits.append(1))
    futures = [store.log_async(record(f"r{i}", ts=float(i))) for i in range(300)]
    release.set()
    assert [f.exception() for f in futures] == [None] * 300
    assert commits == [1, 1]  # the held job's batch, then everything queued meanwhile
    assert inserts == [True]  # 300 rows, one executemany
    release = _hold_writer(store)
    futures = [store.log_async(record(r)) for r in ("x", "r7", "y")]
    release.set()
    assert isinstance(futures[1].exception(), DuplicateRequestError)
    assert futures[0].exception() is None and futures[2].exception() is None
    assert inserts[1:] == [True, False, False, False]  # the batch failed: then row by row
    assert store.count() == 302


def _event(kind: str, rid: str, ts: str, body: bytes) -> dict[str, object]:
    headers = {
        "ce-id": rid,
        "ce-type": REQUEST if kind == "request" else RESPONSE,
        "ce-time": ts,
        "ce-inferenceservicename": "house-price",
        "ce-endpoint": "default",
    }
    return read_event(headers, body, time.time())


def test_kserve_event_halves_merge_in_any_order_within_one_batch(store: PayloadStore) -> None:
    req = orjson.dumps({"instances": [[1.0, 2.0]]})
    resp = orjson.dumps({"predictions": [5.0], "model_version": 4})
    events = [
        _event("response", "a", "2026-01-01T00:00:10.500+00:00", resp),
        _event("request", "a", "2026-01-01T00:00:10+00:00", req),
        _event("request", "b", "2026-01-01T00:00:20+00:00", req),
        _event("response", "b", "2026-01-01T00:00:20.250+00:00", resp),
        _event("request", "c", "2026-01-01T00:00:30+00:00", req),
        _event("request", "c", "2026-01-01T00:00:30+00:00", req),  # a repeated ce-id
    ]
    release = _hold_writer(store)
    futures = [store.merge_async(*event_row(ev)) for ev in events]
    release.set()
    assert [f.result() for f in futures] == [None] * 6  # the batch fell back to row by row
    rows = store.requests(0, 1e12).set_index("request_id")
    assert list(rows.index) == ["a", "b", "c"]
    assert rows.loc["a", "latency_ms"] == pytest.approx(500.0)
    assert rows.loc["b", "latency_ms"] == pytest.approx(250.0)
    assert rows.loc["a", "ts"] == rows.loc["c", "ts"] - 20  # the request's time
    assert list(rows["status"].fillna(0)) == [200, 200, 0]
    assert list(rows["model_version"].fillna("-")) == ["4", "4", "-"]
    assert rows.loc["c", "response"] is None and rows.loc["a", "n_instances"] == 1


WRITER = """
import sys
from mlplatform.serving.payloads import PayloadRecord, PayloadStore
with PayloadStore(sys.argv[1]) as store:
    futures = [
        store.log_async(PayloadRecord(f"{sys.argv[2]}-{i}", float(i), "m", "stable", "1",
                                      "predict", 200, 1.0, 1, "{}", "{}"))
        for i in range(300)
    ]
    print(sum(f.exception() is None for f in futures))
"""


def test_writer_processes_lose_no_row(url: str) -> None:
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, url, f"p{i}"], stdout=subprocess.PIPE)
        for i in range(3)
    ]
    assert [p.communicate(timeout=120)[0].strip() for p in procs] == [b"300"] * 3
    with PayloadStore(url) as store:
        assert store.count() == 900


CROSSINGS = {
    # one statement each, rows in opposite orders
    "reversed": (("request", slice(None), 1), ("response", slice(None), -1)),
    # two statements each, the second one's rows locked by the other replica's first
    "crossed-statements": (("request", slice(0, 300), 1), ("response", slice(300, 600), 1)),
}


@pytest.mark.parametrize("crossing", sorted(CROSSINGS))
def test_two_sink_replicas_merging_crossed_halves_lose_no_event(url: str, crossing: str) -> None:
    """Two replicas of the sink (two stores, two writer threads) merge the halves of the same
    requests in crossed orders, as KServe's agent posts them through a Service, so on
    PostgreSQL their batches lock the same rows in opposite orders: a deadlock must cost a
    retry, never an event (the agent does not resend a post that failed)."""
    req = orjson.dumps({"instances": [[1.0, 2.0]]})
    resp = orjson.dumps({"predictions": [5.0], "model_version": 4})
    ids = [f"r{i:04d}" for i in range(600)]

    def rows(kind: str, part: slice, step: int) -> list[tuple[str, dict[str, object]]]:
        body = req if kind == "request" else resp
        at = "2026-01-01T00:00:10+00:00"
        return [event_row(_event(kind, rid, at, body)) for rid in ids[part][::step]]

    (k1, part1, step1), (k2, part2, step2) = CROSSINGS[crossing]
    if crossing == "reversed":  # all requests one way, all responses the other
        plan_one, plan_two = rows(k1, part1, step1), rows(k2, part2, step2)
    else:  # each replica's first statement takes the rows of the other's second
        plan_one = rows(k1, part1, step1) + rows(k2, part2, step2)
        plan_two = rows(k1, part2, step1) + rows(k2, part1, step2)
    with PayloadStore(url) as one, PayloadStore(url) as two:
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def replica(store: PayloadStore, plan: list[tuple[str, dict[str, object]]]) -> None:
            barrier.wait()
            futures = [store.merge_async(half, row) for half, row in plan]  # type: ignore[arg-type]
            for f in futures:
                try:
                    f.result(timeout=60)
                except Exception as exc:
                    errors.append(exc)

        threads = [
            threading.Thread(target=replica, args=(one, plan_one)),
            threading.Thread(target=replica, args=(two, plan_two)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert errors == []
        logged = one.requests(0, 1e12)
    assert sorted(logged["request_id"]) == ids
    assert logged["request"].notna().all() and logged["response"].notna().all()
