"""The monitor's bulk read of the payload log (``PayloadStore.numeric_window``, read from the
compact form written at ingestion) against the JSON path (``PayloadStore.window``, whose
predictions and labels the monitor maps through ``as_number``), on SQLite and PostgreSQL.

Each body below is chosen to reach one branch of the compact form: numbers and strings, keys
and positions, probability lists, fewer predictions than instances, bodies the form cannot
carry (null, boolean, nested, mixed layouts, an integer beyond 2**53), no body at all, the
sink's two halves, per-instance and replaced labels, rows logged before the migration.
Hand-computed values pin the cases where both paths could be wrong the same way."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from tests.support.services import store_backends, store_database

from mlplatform.serving.payloads import PayloadRecord, PayloadStore, as_number
from mlplatform.serving.payloads.compact import (
    encode_half,
    encode_record,
    encode_request,
    parse_layout,
)
from mlplatform.serving.payloads.numeric import numeric_frame, packed_block, row_blocks
from mlplatform.serving.payloads.statements import INSERT_PAYLOAD, Half, upsert_half
from mlplatform.serving.payloads.window_sql import window_queries
from mlplatform.stores import bulk_read, open_engine
from mlplatform.stores import engine as engine_module
from mlplatform.stores.engine import bulk_rows
from mlplatform.stores.schema import payloads

T0 = 1_767_225_600.0
NAMES = ("area", "rooms", "district")


def body(instances: Any) -> str:
    return json.dumps({"instances": instances})


def reply(predictions: Any) -> str:
    return json.dumps({"predictions": predictions})


#: request id → (request body, response body, label or None); logged in this order, 1 s apart.
CASES: dict[str, tuple[str | None, str | None, Any]] = {
    "dicts": (
        body(
            [
                {"area": 50.5, "rooms": 2, "district": "d1"},
                {"area": 70.0, "rooms": 3, "district": "q7"},
            ]
        ),
        reply([3.1, 4.2]),
        [3.0, 4.5],  # one label per instance
    ),
    "dicts-again": (body([{"area": 1e-300, "rooms": -4, "district": 'ü "x"'}]), reply([0.5]), 7),
    "positional-named": (body([[60.25, 1, "d3"]]), reply([2.0]), None),
    "positional-unnamed": (body([[1.5, 2.5]]), reply([9.0]), 1.25),
    "probabilities": (
        body([[1.0, 2, "a"], [3.0, 4, "b"]]),
        reply([[0.3, 0.7], [0.9, 0.1]]),
        [1, 0],
    ),
    "fewer-predictions": (body([[1.0, 1, "a"], [2.0, 2, "b"], [3.0, 3, "c"]]), reply([5.0]), None),
    "null-value": (body([{"area": None, "rooms": 1, "district": "d1"}]), reply([1.0]), None),
    "boolean": (body([[True, 1, "x"]]), reply([1.0]), "yes"),  # a string label: NaN
    "nested": (body([{"area": [1, 2], "rooms": 1, "district": "d"}]), reply([1.0]), None),
    "mixed-layouts": (body([{"area": 1.0}, {"rooms": 2}]), reply([1.0, 2.0]), [1.0]),
    "huge-int": (body([[2**60 + 1, 1, "z"]]), reply([1.0]), None),
    "no-body": (None, None, None),
    "error": (body([[1.0, 1, "a"]]), json.dumps({"error": "bad"}), None),
    "not-finite": (body([[1.0, 1, "a"]]), '{"predictions": [NaN]}', None),
    "scalar-instance": (json.dumps({"instances": [4.5]}), reply([1.0]), None),
}


@pytest.fixture(params=store_backends())
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with store_database(request.param, tmp_path) as u:
        yield u


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    """PostgreSQL only: SQLite reads every row one by one, in one transaction (no packed
    blocks, no slices)."""
    with store_database("postgresql", tmp_path) as u:
        yield u


def log_alone(store: PayloadStore, record: PayloadRecord) -> None:
    """Log ``record`` in no block (as a row written alone after a batch failed, or before
    ``payloads_0005``): read row by row, or packed by the server on PostgreSQL."""
    row = encode_record(asdict(record))
    store.write(INSERT_PAYLOAD, row, record.request_id).result()


def log_cases(store: PayloadStore, blocks: bool = True) -> None:
    """Log :data:`CASES` (in blocks on PostgreSQL unless ``blocks`` is False), the sink's two
    halves of one pair, two requests outside the window, and the labels."""
    for i, (rid, (req, resp, _)) in enumerate(CASES.items()):
        n = len(json.loads(req)["instances"]) if req else None
        status = 500 if rid == "error" else 200
        rec = PayloadRecord(
            rid, T0 + i, "m", "stable", "3", "predict", status, 2.0 + i, n, req, resp
        )
        store.log(rec) if blocks else log_alone(store, rec)
    # the sink's path: the two halves of one pair, response first
    halves: list[tuple[Half, dict[str, Any]]] = [
        (
            "response",
            {
                "request_id": "halves",
                "ts": T0 + 40.5,
                "model": "m",
                "variant": "canary",
                "model_version": "4",
                "status": 200,
                "response": reply([8.0, 9.0]),
            },
        ),
        (
            "request",
            {
                "request_id": "halves",
                "ts": T0 + 40.0,
                "model": "m",
                "variant": "canary",
                "endpoint": "predict",
                "n_instances": 2,
                "request": body([[5.0, 6, "d2"], [7.0, 8, "d9"]]),
            },
        ),
    ]
    for half, row in halves:
        if blocks:
            store.merge_async(half, row).result()
        else:
            stmt = upsert_half(store.dialect, half)
            store.write(stmt, encode_half(half, row), "halves").result()
    # outside the window or of another model: in neither result
    for rid, ts, model in (("late", T0 + 100, "m"), ("other", T0 + 1, "n")):
        row = body([[1.0, 1, "a"]])
        store.log(
            PayloadRecord(rid, ts, model, "stable", "3", "predict", 200, 1.0, 1, row, reply([1.0]))
        )
    for rid, (_, _, label) in CASES.items():
        if label is not None:
            store.add_feedback(rid, label)
    store.add_feedback("halves", [100.0, 200.0])


def expected(store: PayloadStore, names: tuple[str, ...] | None) -> pd.DataFrame:
    """The JSON path, with predictions and labels as the monitor reads them."""
    frame = store.window(T0, T0 + 60, "m", names)
    frame["prediction"] = [as_number(p) for p in frame["prediction"]]
    frame["label"] = [as_number(y) for y in frame["label"]]
    return frame


def compare(got: pd.DataFrame, want: pd.DataFrame) -> None:
    columns = ["endpoint", "status", "latency_ms", "model_version", "instance"]
    columns += sorted(c for c in want if c.startswith("feature."))
    columns += ["prediction", "label"]
    assert sorted(got.columns) == sorted(columns)
    a = (
        got[columns]
        .reset_index(drop=True)
        .astype(object)
        .where(got[columns].notna().to_numpy(), None)
    )
    b = (
        want[columns]
        .reset_index(drop=True)
        .astype(object)
        .where(want[columns].notna().to_numpy(), None)
    )
    for col in columns:
        for i, (x, y) in enumerate(zip(a[col], b[col], strict=True)):
            same = x == y or (
                isinstance(x, float | int) and isinstance(y, float | int) and float(x) == float(y)
            )
            assert same, f"row {i} {col}: numeric {x!r} != json {y!r}"


@pytest.mark.parametrize("names", [NAMES, None])
def test_the_bulk_read_equals_the_json_path(url: str, names: tuple[str, ...] | None) -> None:
    with PayloadStore(url) as store:
        log_cases(store)
        got = store.numeric_window(T0, T0 + 60, "m", names)
        compare(got, expected(store, names))


def test_hand_computed_values(url: str) -> None:
    with PayloadStore(url) as store:
        log_cases(store)
        got = store.numeric_window(T0, T0 + 60, "m", NAMES)
    assert len(got) == 22  # instances: 2+1+1+1+2+3+1+1+1+2+1+1+1+1+1 + 2 (halves)
    per = {rid: got.iloc[_rows_of(got, rid)[0]] for rid in [*CASES, "halves"]}  # 1st instance
    assert per["dicts"]["feature.area"] == 50.5 and per["dicts"]["feature.district"] == "d1"
    assert per["dicts"]["label"] == 3.0 and per["dicts"]["prediction"] == 3.1
    assert per["dicts-again"]["feature.district"] == 'ü "x"' and per["dicts-again"]["label"] == 7.0
    assert (
        per["dicts-again"]["feature.area"] == 1e-300 and per["dicts-again"]["feature.rooms"] == -4
    )
    assert per["positional-named"]["feature.rooms"] == 1
    assert (
        per["positional-unnamed"]["feature.0"] == 1.5 and per["positional-unnamed"]["label"] == 1.25
    )
    assert per["probabilities"]["prediction"] == 0.7
    assert per["huge-int"]["feature.area"] == 2**60 + 1  # exact: read from the JSON, not float64
    assert math.isnan(per["boolean"]["label"]) and math.isnan(per["not-finite"]["prediction"])
    assert per["no-body"]["instance"] == 0 and math.isnan(per["no-body"]["prediction"])
    fewer = got.iloc[_rows_of(got, "fewer-predictions")]
    assert fewer["prediction"].tolist()[0] == 5.0 and fewer["prediction"].isna().sum() == 2
    halves = got.iloc[_rows_of(got, "halves")]
    assert halves["prediction"].tolist() == [8.0, 9.0] and halves["label"].tolist() == [
        100.0,
        200.0,
    ]
    assert halves["latency_ms"].tolist() == [500.0, 500.0] and halves["model_version"].tolist() == [
        "4",
        "4",
    ]


def _request_ids(frame: pd.DataFrame) -> list[str]:
    """The request of each instance row, from the cases' instance counts (logged in order)."""
    counts = [
        (rid, len(json.loads(req)["instances"]) if req else 1) for rid, (req, _, _) in CASES.items()
    ]
    ids = [rid for rid, n in counts for _ in range(n)] + ["halves", "halves"]
    assert len(ids) == len(frame)
    assert (frame["instance"] == 0).tolist() == [
        a != b for a, b in zip(ids, [None, *ids[:-1]], strict=True)
    ]
    return ids


def _rows_of(frame: pd.DataFrame, rid: str) -> list[int]:
    return [i for i, r in enumerate(_request_ids(frame)) if r == rid]


def test_a_replaced_label_is_read_as_the_latest(url: str) -> None:
    """The trigger keeps ``latest_label`` current: a second label (newer) wins, as in window()."""
    with PayloadStore(url) as store:
        log_cases(store)
        store.add_feedback("positional-named", 11.0)
        store.add_feedback("positional-named", 12.0)
        got = store.numeric_window(T0, T0 + 60, "m", NAMES)
        (i,) = _rows_of(got, "positional-named")
        assert got["label"].iloc[i] == 12.0
        compare(got, expected(store, NAMES))


def test_rows_without_the_compact_form_are_read_from_their_bodies(url: str) -> None:
    """Rows logged before migration payloads_0002 (or by an older writer) have NULL compact
    columns: the bulk read encodes their bodies as ingestion would."""
    with PayloadStore(url) as store:
        log_cases(store)
        want = expected(store, NAMES)
    engine = open_engine(url)
    with engine.begin() as conn:
        cleared = conn.execute(
            sa.update(payloads)
            .where(payloads.c.request_id.in_(["dicts", "probabilities", "boolean", "halves"]))
            .values(
                feature_layout=None,
                feature_rows=None,
                feature_numbers=None,
                feature_strings=None,
                prediction_numbers=None,
            )
        ).rowcount
    engine.dispose()
    assert cleared == 4
    with PayloadStore(url) as store:
        compare(store.numeric_window(T0, T0 + 60, "m", NAMES), want)


def test_an_empty_window(url: str) -> None:
    with PayloadStore(url) as store:
        log_cases(store)
        assert store.numeric_window(T0 + 1000, T0 + 2000, "m", NAMES).empty
        assert store.numeric_window(T0, T0 + 60, "nobody", NAMES).empty


def test_the_compact_form_round_trips_numbers_exactly() -> None:
    values = [0.1, -0.0, 1e308, 5e-324, 123456789.123456789, 2.0**53]
    cols = encode_request(body([values]))
    layout = parse_layout(cols["feature_layout"])
    assert layout.kinds == "ffffff" and layout.keys is None and cols["feature_rows"] == 1
    back = np.frombuffer(cols["feature_numbers"], "<f8")
    assert back.tolist() == values and math.copysign(1, back[1]) == -1
    assert encode_request(body([[2**53 + 1]]))["feature_layout"] is None  # not exact in float64
    assert encode_request(None)["feature_rows"] == 1  # one row, no features (as window() reads it)


def _upgrade_to(url: str, revision: str) -> None:
    """Alembic's upgrade of the payload store to ``revision`` (as migrate() runs it)."""
    from alembic import command
    from alembic.config import Config

    from mlplatform.stores.migrate import MIGRATIONS, version_table

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS / "payloads"))
    engine = open_engine(url)
    with engine.begin() as conn:
        cfg.attributes.update(connection=conn, version_table=version_table("payloads"))
        command.upgrade(cfg, revision)
    engine.dispose()


def test_the_migration_backfills_latest_labels_and_keeps_rows(url: str) -> None:
    """A database written at payloads_0001 (no compact columns, labels only in ``feedback``)
    upgrades in place: every row is kept, each request's newest label is copied to its row,
    and the bulk read equals the JSON path."""
    _upgrade_to(url, "payloads_0001")
    engine = open_engine(url)
    rows = [
        ("a", T0, body([[1.0, 2, "d1"]]), reply([3.0])),
        ("b", T0 + 1, body([[4.0, 5, "d2"], [6.0, 7, "d3"]]), reply([8.0, 9.0])),
        ("c", T0 + 2, body([[1.5, 1, "d1"]]), reply([[0.4, 0.6]])),
    ]
    labels = [("a", T0 + 10, "1.0"), ("a", T0 + 20, "2.5"), ("b", T0 + 15, "[10, 20]")]
    with engine.begin() as conn:
        for rid, ts, req, resp in rows:
            conn.execute(
                sa.text(
                    "INSERT INTO payloads (request_id, ts, model, variant, model_version, "
                    "endpoint, status, latency_ms, n_instances, request, response) VALUES "
                    "(:r, :ts, 'm', 'stable', '1', 'predict', 200, 3.0, 1, :req, :resp)"
                ),
                {"r": rid, "ts": ts, "req": req, "resp": resp},
            )
        for rid, ts, label in labels:
            conn.execute(
                sa.text("INSERT INTO feedback (request_id, ts, label) VALUES (:r, :ts, :l)"),
                {"r": rid, "ts": ts, "l": label},
            )
    with PayloadStore(url) as store:  # migrates to the head
        with store.engine.connect() as conn:
            latest = dict(
                conn.execute(sa.select(payloads.c.request_id, payloads.c.latest_label)).all()
            )
        assert latest == {"a": "2.5", "b": "[10, 20]", "c": None}
        got = store.numeric_window(T0, T0 + 60, "m", NAMES)
        assert got["label"].tolist()[:3] == [2.5, 10.0, 20.0] and math.isnan(got["label"].iloc[3])
        assert got["prediction"].tolist() == [3.0, 8.0, 9.0, 0.6]
        compare(got, expected(store, NAMES))
        store.add_feedback("c", 1)  # the trigger, installed by the migration, keeps it current
        assert store.numeric_window(T0, T0 + 60, "m", NAMES)["label"].iloc[3] == 1.0
    engine.dispose()


def _read(store: PayloadStore, slices: int) -> pd.DataFrame:
    """The window read as ``numeric_window`` reads it, in ``slices`` packed slices (0: every
    row one by one, as on SQLite)."""
    *packed, rows = bulk_read(store.engine, window_queries(T0, T0 + 60, "m", slices).all)
    blocks = [packed_block(r) for table in packed for r in table]
    return numeric_frame([*blocks, *row_blocks(rows)], NAMES)


@pytest.mark.services
@pytest.mark.parametrize("slices", [1, 2, 3, 7])
def test_a_window_read_in_packed_slices_is_the_window_read_row_by_row(
    pg_url: str, slices: int
) -> None:
    """The server's packed blocks of rows in no block (PostgreSQL) decode to exactly the frame
    of the rows read one by one, whatever the slicing."""
    with PayloadStore(pg_url) as store:
        log_cases(store, blocks=False)
        whole = _read(store, 0)
        parts = _read(store, slices)
    assert len(whole) == 22
    compare(parts, whole)


@pytest.mark.services
def test_every_packed_column_lists_the_requests_in_one_order(pg_url: str) -> None:
    """The i-th entry of each packed column of a block belongs to the same request: times,
    latencies and instance counts decoded from one block line up as they were logged, across
    several thousand requests of one block (a parallel scan or a per-aggregate order would
    mix them)."""
    rng = np.random.default_rng(3)
    n = 3000
    ts = T0 + np.sort(rng.uniform(0, 60, n))
    with PayloadStore(pg_url) as store:
        pending = []
        for i in rng.permutation(n):  # logged out of time order
            k = int(i % 3) + 1
            rows = [[float(i), j, f"d{i}"] for j in range(k)]
            record = PayloadRecord(
                f"r{i:05d}", float(ts[i]), "m", "stable", "1", "predict", 200, float(i), k,
                body(rows), reply([float(i) + j for j in range(k)]),
            )  # fmt: skip
            pending.append(
                store.write(INSERT_PAYLOAD, encode_record(asdict(record)), record.request_id)
            )
        for done in pending:
            done.result()
        (table,) = bulk_read(store.engine, window_queries(T0, T0 + 60, "m", 1).blocks)
    (block,) = [packed_block(r) for r in table]
    i = block.latency_ms.astype(np.int64)  # the request's number, logged as its latency
    assert sorted(i.tolist()) == list(range(n))
    assert np.array_equal(block.ts, ts[i]) and np.array_equal(block.counts, i % 3 + 1)
    per_instance = np.repeat(i, block.counts)
    numbers = np.frombuffer(block.numbers, "<f8").reshape(-1, 2)
    assert np.array_equal(numbers[:, 0], per_instance.astype(float))
    assert json.loads("[" + block.strings[:-1] + "]") == [f"d{k}" for k in per_instance]
    predictions = np.frombuffer(block.predictions, "<f8")
    starts = np.cumsum(block.counts) - block.counts
    at = np.arange(len(per_instance)) - np.repeat(starts, block.counts)
    assert np.array_equal(predictions, per_instance + at)


@pytest.mark.services
def test_a_window_on_postgresql_is_read_from_one_snapshot(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row committed after the first query's snapshot (the blocks written at ingestion),
    inside the window, is read by none of the later ones (label blocks, the server's packed
    rows, rows one by one): without the shared snapshot they would see it."""
    with PayloadStore(pg_url) as store:
        log_cases(store)
        before = len(store.numeric_window(T0, T0 + 60, "m", NAMES))
        mid = PayloadRecord(
            "mid-read",
            T0 + 50.5,
            "m",
            "stable",
            "1",
            "predict",
            200,
            1.0,
            1,
            body([[1.0, 1, "a"]]),
            reply([1.0]),
        )

        reads: list[int] = []

        def read_then_insert(conn: Any, query: Any, settings: bool = True) -> Any:
            rows = bulk_rows(conn, query, settings)
            reads.append(len(rows))
            if len(reads) == 1:  # after the first query (the blocks), before the rest
                log_alone(store, mid)  # a row in no block: what the later queries read
            return rows

        monkeypatch.setattr(engine_module, "bulk_rows", read_then_insert)
        parts = store.numeric_window(T0, T0 + 60, "m", NAMES)
        monkeypatch.undo()
        assert len(reads) == 4  # blocks, label blocks, packed rows, rows one by one
        assert "mid-read" in store.ids()  # it was committed while the slices were read
        assert len(parts) == before
        assert len(store.numeric_window(T0, T0 + 60, "m", NAMES)) == before + 1


def _rows(data: Any) -> list[tuple[Any, ...]]:
    """WindowData's per-instance rows (features, prediction, label), order-free and with NaN
    as None, so that two reads can be compared whatever order their blocks came in."""

    def plain(x: Any) -> Any:
        if x is None or (isinstance(x, float) and math.isnan(x)):
            return None
        return float(x) if isinstance(x, int | float | np.number) else x

    columns = [data.features[c].to_numpy() for c in data.features.columns]
    rows = zip(*columns, data.predictions, data.labels, strict=True)
    return sorted((tuple(plain(v) for v in row) for row in rows), key=repr)


@pytest.mark.parametrize("endpoints", [("predict", "infer"), ("infer",)])
@pytest.mark.parametrize("names", [NAMES, ("area", "rooms")])
def test_the_monitors_window_equals_the_json_path(
    url: str, names: tuple[str, ...], endpoints: tuple[str, ...]
) -> None:
    """What the monitor reads (blocks straight to arrays, no frame of every instance) equals
    the JSON path's rows split the documented way (frame_window), up to row order."""
    from mlplatform.monitoring.payload_window import frame_window, window_data

    with PayloadStore(url) as store:
        log_cases(store)
        got = window_data(store.window_blocks(T0, T0 + 60, "m"), names, endpoints)
        want = frame_window(expected(store, names), names, endpoints)
    assert list(got.features.columns) == list(names)
    assert _rows(got) == _rows(want)
    assert sorted(zip(got.latency_ms, got.status, strict=True)) == sorted(
        zip(want.latency_ms, want.status, strict=True)
    )
    assert got.model_versions == want.model_versions
    assert got.rows == want.rows > 0 or endpoints == ("infer",)


def test_a_window_without_a_named_feature_is_refused(url: str) -> None:
    from mlplatform.errors import PayloadWindowError
    from mlplatform.monitoring.payload_window import window_data

    with PayloadStore(url) as store:
        log_cases(store)
        blocks = store.window_blocks(T0, T0 + 60, "m")
    names = ("area", "rooms", "district", "price")  # no logged request has a fourth
    with pytest.raises(PayloadWindowError, match=r"lack features \['price'\]"):
        window_data(blocks, names, ("predict",))
