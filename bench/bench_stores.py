"""Store benchmarks against real PostgreSQL, every baseline measured in the same run.

1. Sink ingestion into PostgreSQL: KServe logger request+response pairs per second through
   the sink's ingestion path (``read_event`` → ``event_row`` → ``PayloadStore.merge_async``:
   the writer thread's group commit; on PostgreSQL a batch's requests whose two halves are
   both in it as one row each, the other halves one ``INSERT ... SELECT ... ON CONFLICT`` per
   kind, the rows passed as one JSON parameter) from 8 concurrent producers,
   against a row-at-a-time baseline (the same upserts, one INSERT and one COMMIT per event, the
   same 8 producers on pooled connections). HTTP is left out: it is the same for both.
2. The monitor job over a 100k-request window read from PostgreSQL, end to end (read and decode
   the window, our drift statistics, concept drift, health, JSON evidence, the alert), against
   Evidently's DataDriftPreset report alone on the same data, both warm (Evidently's first call
   in a process costs about four times its later ones; it is reported, not compared). At this
   scale the job runs with
   ``monitor.html_report: false`` (Evidently's HTML would be most of its time); the JSON
   evidence carries every statistic.

PostgreSQL comes from ``MLPLATFORM_TEST_POSTGRES_URL`` (default the local server, as the
``services`` tests); a scratch database is created and dropped. Without a server the row is
skipped with the reason printed.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson

from bench.bench_drift import T0, best_time, log_window
from mlplatform.config import load_config
from mlplatform.core.training import generate, split_frame
from mlplatform.monitoring.evidently_report import run_preset
from mlplatform.monitoring.monitor import run_monitor
from mlplatform.serving.payloads import PayloadStore
from mlplatform.serving.payloads.statements import upsert_half
from mlplatform.serving.sink import REQUEST, RESPONSE, event_row, read_event
from mlplatform.stores import migrate, open_engine

Row = dict[str, Any]
ADMIN_URL = os.environ.get(
    "MLPLATFORM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
PRODUCERS = 8
REQUEST_BODY = orjson.dumps({"instances": [[62.5, 3, 12.0, 1, 0.4]]})
RESPONSE_BODY = orjson.dumps({"predictions": [4.2e9], "model_version": "3"})


def _database(name: str) -> str:
    parts = urlsplit(ADMIN_URL)
    return urlunsplit(("postgresql+psycopg", parts.netloc, f"/{name}", parts.query, ""))


@contextmanager
def scratch_database() -> Iterator[str]:
    """A new PostgreSQL database for one measurement (dropped afterwards)."""
    import psycopg

    name = f"mlp_bench_{uuid.uuid4().hex[:10]}"
    admin = urlunsplit(("postgresql", *tuple(urlsplit(ADMIN_URL))[1:]))
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _database(name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def analyze(url: str) -> None:
    """``VACUUM ANALYZE`` the freshly loaded tables, as autovacuum does on a live server within
    a minute of a bulk load: without statistics the planner sorts the window on disk, and
    without it autovacuum may start its own pass while the job is being timed, so the figure
    would depend on when it ran."""
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as c:
        c.execute("VACUUM ANALYZE")


def events(producer: int, pairs: int) -> Iterator[dict[str, Any]]:
    """The CloudEvents of ``pairs`` requests, each request followed by its response."""
    for i in range(pairs):
        rid = f"p{producer}-{i}"
        for kind, body in ((REQUEST, REQUEST_BODY), (RESPONSE, RESPONSE_BODY)):
            headers = {"ce-id": rid, "ce-type": kind, "ce-inferenceservicename": "house-price"}
            yield read_event(headers, body, time.time())


def _timed(work: Callable[[int], None]) -> float:
    threads = [threading.Thread(target=work, args=(p,)) for p in range(PRODUCERS)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return time.perf_counter() - t


def batched(url: str, pairs: int) -> float:
    """Seconds for PRODUCERS × pairs pairs through the sink's store, all durable at the end."""
    with PayloadStore(url) as store:

        def produce(p: int) -> None:
            pending: list[Future[None]] = []
            for ev in events(p, pairs):
                pending.append(store.merge_async(*event_row(ev)))
                if len(pending) >= 64:  # the sink awaits each event: bounded in-flight work
                    pending.pop(0).result()
            for f in pending:
                f.result()

        seconds = _timed(produce)
        assert store.count() == PRODUCERS * pairs
    return seconds


def row_at_a_time(url: str, pairs: int) -> float:
    """Seconds for the same events, one INSERT and one COMMIT each."""
    engine = open_engine(url)
    migrate(engine, "payloads")
    statements = {h: upsert_half("postgresql", h) for h in ("request", "response")}

    def produce(p: int) -> None:
        with engine.connect() as conn:
            for ev in events(p, pairs):
                half, row = event_row(ev)
                with conn.begin():
                    conn.execute(statements[half], row)

    seconds = _timed(produce)
    engine.dispose()
    return seconds


def sink_ingestion(pairs: int = 2000, baseline_pairs: int = 250) -> Row:
    with scratch_database() as url:
        ours = PRODUCERS * pairs / batched(url, pairs)
    with scratch_database() as url:
        base = PRODUCERS * baseline_pairs / row_at_a_time(url, baseline_pairs)
    return {
        "benchmark": f"sink ingestion into PostgreSQL, {PRODUCERS} producers, "
        f"{PRODUCERS * pairs} request+response pairs",
        "baseline": "one INSERT + COMMIT per event (same upserts, same producers)",
        "ours": ours,
        "baseline_value": base,
        "ratio": ours / base,
        "unit": "pairs/s",
        "target": "≥ 5× and ≥ 2,000 pairs/s",
        "ok": ours >= 5 * base and ours >= 2000,
        "notes": f"group commit, one statement per batch: {ours:,.0f} pairs/s vs "
        f"{base:,.0f} row at a time",
    }


def monitor_from_postgres(requests: int = 100_000) -> Row:
    cfg = load_config("configs/house-price.yaml")
    reference = split_frame(cfg, generate(cfg.data)).train
    current = generate(cfg.data.model_copy(update={"shift": 0.5, "seed": 5, "rows": requests}))
    with scratch_database() as url, tempfile.TemporaryDirectory() as tmp:
        log_window(url, cfg, requests)
        analyze(url)
        settings = cfg.monitor.model_copy(
            update={
                "alert_store": f"sqlite:///{tmp}/alerts.db",
                "reports_dir": f"{tmp}/reports",
                "html_report": False,
            }
        )

        def job() -> None:
            run_monitor(cfg, url, reference, now=T0 + 3700, settings=settings, baseline_error=4e8)

        def report_alone() -> None:
            snap = run_preset(reference, current, cfg.numeric_features, cfg.categorical_features)
            snap.save_html(f"{tmp}/alone.html")

        t_job, _ = best_time(job, 5)  # the first call warms caches; the best is a warm one
        t_cold, _ = best_time(report_alone, 1)  # Evidently's first call in this process
        t_report, _ = best_time(report_alone, 5)
    return {
        "benchmark": f"monitor job, {requests:,} logged requests read from PostgreSQL, end to end",
        "baseline": "Evidently DataDriftPreset report + HTML alone (same data)",
        "ours": t_job,
        "baseline_value": t_report,
        "ratio": t_report / t_job,
        "unit": "s",
        "target": "≥ 10× faster",
        "ok": t_report >= 10 * t_job,
        "notes": f"both warm, best of 5: job {t_job:.2f} s (monitor.html_report off), Evidently "
        f"alone {t_report:.2f} s (its first call in a process: {t_cold:.2f} s)",
    }


def run() -> list[Row]:
    try:
        with scratch_database():
            pass
    except Exception as exc:  # no server: skip the row, say why
        print(f"skip bench_stores: PostgreSQL at {ADMIN_URL} is not usable: {exc}", file=sys.stderr)
        return []
    return [sink_ingestion(), monitor_from_postgres()]
