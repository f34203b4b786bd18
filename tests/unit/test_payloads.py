"""The SQLite payload log: round trip, concurrent writers, feedback joins, decoding."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pytest

from mlplatform.errors import DuplicateRequestError, PayloadLogError, UnknownRequestError
from mlplatform.serving.payloads import (
    PayloadRecord,
    PayloadStore,
    decode_instances,
    decode_predictions,
)


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[PayloadStore]:
    with PayloadStore(tmp_path / "payloads.db") as s:
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


def test_rows_survive_reopening(tmp_path: Path) -> None:
    with PayloadStore(tmp_path / "p.db") as s:
        futures = [s.log_async(record(f"r{i}")) for i in range(50)]
    assert all(f.done() and f.exception() is None for f in futures)
    with PayloadStore(tmp_path / "p.db") as s:
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


def test_window_decodes_instances_and_joins_feedback(store: PayloadStore) -> None:
    store.log(record("a", ts=100.0))
    store.log(record("b", ts=101.0, variant="canary"))
    store.log(record("late", ts=500.0))
    store.add_feedback("a", [11.0, 19.0])
    store.add_feedback_many([("b", [1.0, 2.0])])
    time.sleep(0.002)
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


def test_closed_store_refuses_writes(tmp_path: Path) -> None:
    s = PayloadStore(tmp_path / "p.db")
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
