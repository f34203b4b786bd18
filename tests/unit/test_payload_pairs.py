"""Both halves of a request in one writer batch (PostgreSQL): written as ONE row
(:func:`~mlplatform.serving.payloads.statements.bulk_merge_pair`), which must be the row the
two half upserts leave. The oracle is SQLite's path, which has no pairing: each half merged by
its own upsert, one after the other, in the order the halves were queued."""

from __future__ import annotations

import json
import random
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from tests.support.payload_blocks import gated
from tests.support.services import store_database

from mlplatform.serving.payloads import PayloadStore
from mlplatform.stores.schema import payloads

pytestmark = [pytest.mark.services, pytest.mark.usefixtures("writer_merges_held")]
T0 = 1_767_225_600.0
Event = tuple[str, dict[str, Any]]
COLUMNS = [c.name for c in payloads.columns if c.name not in ("block_key", "block_pos")]


def halves(rng: random.Random, i: int) -> list[Event]:
    """One request's two events, as the sink reads them: the response's time usually later
    (sometimes earlier: clocks differ, the latency is then 0), its model and variant not
    always the request's (the request's win), bodies the compact form may not carry, error
    responses without predictions."""
    rid, ts = f"q{i:03d}", T0 + i + rng.uniform(0, 0.5)
    values = [[round(rng.uniform(20, 200), 3), rng.randint(1, 6), rng.choice(["d1", 'ü"'])]]
    if rng.random() < 0.1:
        values[0][1] = True  # not compact: the row is not complete
    body = json.dumps({"instances": values})
    answer = rng.choice(
        [{"predictions": [round(rng.uniform(0, 9), 3)], "model_version": "2"}] * 4
        + [{"error": "boom"}, {"predictions": [[0.25, 0.75]]}]
    )
    request = {
        "request_id": rid, "ts": ts, "model": "m", "variant": "stable",
        "endpoint": rng.choice(["predict", "infer"]), "n_instances": 1, "request": body,
    }  # fmt: skip
    response = {
        "request_id": rid, "ts": ts + rng.uniform(-0.01, 0.05),
        "model": rng.choice(["m", "m-other"]), "variant": rng.choice(["stable", "v7"]),
        "model_version": answer.get("model_version"), "status": 200,
        "response": json.dumps(answer),
    }  # fmt: skip
    pair: list[Event] = [("request", request), ("response", response)]
    return pair if rng.random() < 0.5 else pair[::-1]


def one_batch(store: PayloadStore, events: list[Event]) -> None:
    """Queue ``events`` while the writer is held, so they are written as one batch."""
    gate = gated(store)
    futures = [store.merge_async(half, row) for half, row in events]  # type: ignore[arg-type]
    gate.set()
    for f in futures:
        f.result(10)


def rows(url: str) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            query = sa.select(*(payloads.c[c] for c in COLUMNS)).order_by(payloads.c.request_id)
            return [tuple(r) for r in conn.execute(query)]
    finally:
        engine.dispose()


def blocked(url: str) -> set[str]:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            query = sa.select(payloads.c.request_id).where(payloads.c.block_key.is_not(None))
            return set(conn.execute(query).scalars())
    finally:
        engine.dispose()


def through_sqlite(tmp_path: Path, batches: list[list[Event]]) -> str:
    url = f"sqlite:///{tmp_path / 'oracle.db'}"
    with PayloadStore(url) as oracle:
        for batch in batches:
            for half, row in batch:
                oracle.merge_async(half, row).result(10)  # type: ignore[arg-type]
    return url


def test_both_halves_in_one_batch_are_the_row_the_two_upserts_leave(
    pg_url: str, tmp_path: Path
) -> None:
    """Fails on a pair taking the response's time, model or variant, a latency of the wrong
    sign or not clamped at 0, a column of one half lost, a complete pair not in a block or an
    incomplete one in a block."""
    rng = random.Random(7)
    events = [e for i in range(150) for e in halves(rng, i)]
    rng.shuffle(events)
    with PayloadStore(pg_url) as store:
        one_batch(store, events)
    oracle = through_sqlite(tmp_path, [events])
    got, want = rows(pg_url), rows(oracle)
    assert len(got) == len(want) == 150
    for g, w in zip(got, want, strict=True):
        assert g == w, f"{g[0]}: {dict(zip(COLUMNS, g, strict=True))} != {w}"
    complete = {
        r[0]
        for r in want
        if r[COLUMNS.index("feature_layout")] is not None
        and r[COLUMNS.index("prediction_numbers")] is not None
    }
    assert 0 < len(complete) < 150
    assert blocked(pg_url) == complete


def test_a_pair_over_a_half_stored_earlier_and_a_half_sent_twice(
    pg_url: str, tmp_path: Path
) -> None:
    """Halves stored in an earlier batch, then a batch with the pair again (the agent's
    redelivery), other requests' halves alone, and a half twice in the batch (which makes the
    writer merge that batch row by row): the rows are those of the upserts one by one."""
    rng = random.Random(11)
    requests = [halves(rng, i) for i in range(60)]
    first = [pair[0] for pair in requests[:30]]  # one half of each of 30 requests
    second = [e for pair in requests[:45] for e in pair]  # their pairs again, 15 new pairs
    second += [pair[0] for pair in requests[45:]]  # and 15 lone halves
    rng.shuffle(second)
    third = [requests[50][1], requests[50][1], requests[55][1]]  # one half twice
    with PayloadStore(pg_url) as store:
        for batch in (first, second, third):
            one_batch(store, batch)
    assert rows(pg_url) == rows(through_sqlite(tmp_path, [first, second, third]))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
@pytest.mark.parametrize("compact", [True, False])
def test_a_request_delivered_again_after_its_response_keeps_the_latency(
    backend: str, compact: bool, tmp_path: Path
) -> None:
    """The agent delivers at least once: a request half again after the response must not
    change the row (it once set the latency to 0: the row's time was already the request's).
    Without the compact form the PostgreSQL row is in no block, so the half's upsert runs."""
    rng = random.Random(3)
    request, response = sorted(halves(rng, 0), key=lambda e: e[0])
    if not compact:
        request[1]["request"] = json.dumps({"instances": [[1.0, True, "d1"]]})
    want = (response[1]["ts"] - request[1]["ts"]) * 1000
    with store_database(backend, tmp_path) as url, PayloadStore(url) as store:
        for half, row in (request, response, request):
            store.merge_async(half, row).result(10)  # type: ignore[arg-type]
        (got,) = [r[COLUMNS.index("latency_ms")] for r in rows(url)]
    assert got == pytest.approx(max(want, 0.0), abs=1e-9)


def test_a_batch_of_halves_is_one_autocommit_statement(pg_url: str) -> None:
    """The writer's round trips per batch of the sink's halves: the merge statement alone, on
    an autocommit connection (no BEGIN, SAVEPOINT, RELEASE or COMMIT around it); a batch that
    also holds another kind of job still runs in one transaction."""
    rng = random.Random(5)
    events = [e for i in range(40) for e in halves(rng, i)]
    ran: list[tuple[str, bool]] = []
    with PayloadStore(pg_url) as store:

        @sa.event.listens_for(store.engine, "before_cursor_execute")
        def seen(conn: sa.Connection, cursor: Any, statement: str, *args: Any) -> None:
            dbapi = conn.connection.dbapi_connection
            ran.append((statement.split(None, 2)[1], bool(getattr(dbapi, "autocommit", None))))

        one_batch(store, events)
        merges = [r for r in ran if r[0] == "pairs"]  # WITH pairs AS (...)
        assert merges == [("pairs", True)], ran
        ran.clear()
        one_batch(store, [halves(rng, 99)[0]])  # alone: still one statement
        assert [r for r in ran if r[0] == "pairs"] == [("pairs", True)], ran
        ran.clear()
        gate = threading.Event()
        held = store.transaction(lambda conn: gate.wait(10))
        mixed = [store.merge_async(*e) for e in halves(rng, 98)]  # type: ignore[arg-type]
        mixed.append(store.transaction(lambda conn: None))  # another kind of job
        gate.set()
        for f in [held, *mixed]:
            f.result(10)
        assert [r for r in ran if r[0] == "pairs"] == [("pairs", False)], ran
    assert len(rows(pg_url)) == 42
