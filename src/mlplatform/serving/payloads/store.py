"""The payload log's SQLite store: one writer thread with group commit, short-lived readers
(see :mod:`mlplatform.serving.payloads`)."""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from contextlib import closing
from dataclasses import astuple
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pandas as pd

from mlplatform.errors import DuplicateRequestError, PayloadLogError, UnknownRequestError
from mlplatform.serving.payloads.decode import instance_rows
from mlplatform.serving.payloads.records import COLUMNS, SCHEMA, PayloadRecord

T = TypeVar("T")

Job = tuple[Callable[[sqlite3.Connection], Any], "Future[Any]"]


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


class PayloadStore:
    """Durable, thread-safe payload log over one SQLite file (see the module docstring)."""

    def __init__(self, path: Path, batch_max: int = 512) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = connect(self.path)
        self._conn.executescript(SCHEMA)
        self._batch_max = batch_max
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._closed = False
        self._lock = threading.Lock()
        self._writer = threading.Thread(target=self._run, name="payload-writer", daemon=True)
        self._writer.start()

    # -- writing -------------------------------------------------------------------------
    def transaction(self, fn: Callable[[sqlite3.Connection], T]) -> Future[T]:
        """Run ``fn(conn)`` in the writer thread; the future resolves once it is committed."""
        fut: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise PayloadLogError(f"payload log {self.path} is closed")
            self._queue.put((fn, fut))
        return fut

    def log_async(self, record: PayloadRecord) -> Future[None]:
        """Queue one row; the future resolves when it is durable (DuplicateRequestError if
        its request id is already logged)."""
        return self.transaction(lambda conn: _insert(conn, record))

    def log(self, record: PayloadRecord) -> None:
        """Store one row and return once it is on disk."""
        self.log_async(record).result()

    def add_feedback(self, request_id: str, labels: Any) -> None:
        """Attach ground truth (a value, or a list with one label per instance)."""
        self.add_feedback_many([(request_id, labels)])

    def add_feedback_many(self, items: Sequence[tuple[str, Any]]) -> None:
        """Attach several labels at once: all are stored, or none if any id is unknown."""
        now = time.time()
        self.transaction(lambda conn: _insert_feedback(conn, items, now)).result()

    def close(self) -> None:
        """Commit everything queued, then stop the writer and close the file."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._writer.join()
        self._conn.close()

    def __enter__(self) -> PayloadStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        while True:
            jobs = [self._queue.get()]
            while len(jobs) < self._batch_max:
                try:
                    jobs.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._commit([j for j in jobs if j is not None])
            if None in jobs:
                return

    def _commit(self, jobs: list[Job]) -> None:
        if not jobs:
            return
        outcomes: list[tuple[bool, Any]] = []
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            outcomes = [_in_savepoint(self._conn, fn) for fn, _ in jobs]
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            error = PayloadLogError(f"payload log {self.path}: commit failed: {exc}")
            outcomes = [(False, error)] * len(jobs)
        for (_, fut), (ok, value) in zip(jobs, outcomes, strict=True):
            _resolve(fut, ok, value)

    # -- reading -------------------------------------------------------------------------
    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with closing(sqlite3.connect(self.path, timeout=30)) as conn:
            return conn.execute(sql, params).fetchall()

    def count(self) -> int:
        """Number of logged requests."""
        return int(self._read("SELECT COUNT(*) FROM payloads")[0][0])

    def ids(self) -> set[str]:
        return {r[0] for r in self._read("SELECT request_id FROM payloads")}

    def requests(self, since: float, until: float, model: str | None = None) -> pd.DataFrame:
        """One row per request with ``since <= ts < until``, with its latest ``label`` (JSON
        decoded, None when unlabelled), oldest first."""
        sql = (
            f"SELECT {', '.join('p.' + c for c in COLUMNS)}, f.label FROM payloads p "
            "LEFT JOIN (SELECT request_id, label, MAX(ts) FROM feedback GROUP BY request_id) f "
            "ON f.request_id = p.request_id WHERE p.ts >= ? AND p.ts < ?"
        )
        params: list[Any] = [since, until]
        if model is not None:
            sql, params = sql + " AND p.model = ?", [*params, model]
        frame = pd.DataFrame(
            self._read(sql + " ORDER BY p.ts", params), columns=[*COLUMNS, "label"]
        )
        frame["label"] = [None if x is None else orjson.loads(x) for x in frame["label"]]
        return frame

    def window(
        self,
        since: float,
        until: float,
        model: str | None = None,
        feature_names: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """One row per instance of each request in ``[since, until)``, joined with feedback.

        Columns: the request's metadata (``request_id``, ``ts``, ``variant``, ``status``, ...),
        ``instance`` (its index in the request), ``feature.<name>`` per input feature (named by
        the instance's keys, else by ``feature_names``, else by position), ``prediction`` and
        ``label`` (NaN when missing). A request whose body cannot be decoded gives one row
        with no features.
        """
        rows: list[dict[str, Any]] = []
        for rec in self.requests(since, until, model).to_dict("records"):
            rows.extend(instance_rows(rec, feature_names))
        return pd.DataFrame(rows)


def _insert(conn: sqlite3.Connection, record: PayloadRecord) -> None:
    marks = ", ".join("?" * len(COLUMNS))
    try:
        conn.execute(
            f"INSERT INTO payloads ({', '.join(COLUMNS)}) VALUES ({marks})", astuple(record)
        )
    except sqlite3.IntegrityError:
        raise DuplicateRequestError(
            f"request id {record.request_id!r} is already in the payload log; "
            "send a unique x-request-id per request"
        ) from None


def _insert_feedback(conn: sqlite3.Connection, items: Sequence[tuple[str, Any]], now: float) -> int:
    ids = sorted({rid for rid, _ in items})
    marks = ", ".join("?" * len(ids))
    found = {
        r[0]
        for r in conn.execute(f"SELECT request_id FROM payloads WHERE request_id IN ({marks})", ids)
    }
    missing = [rid for rid in ids if rid not in found]
    if missing:
        raise UnknownRequestError(missing)
    rows = [(rid, now, orjson.dumps(label).decode()) for rid, label in items]
    conn.executemany(
        "INSERT OR REPLACE INTO feedback (request_id, ts, label) VALUES (?, ?, ?)", rows
    )
    return len(rows)


def _in_savepoint(
    conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], Any]
) -> tuple[bool, Any]:
    """Run ``fn`` so that its failure undoes only its own writes: (ok, result or error)."""
    conn.execute("SAVEPOINT job")
    try:
        result = fn(conn)
    except Exception as exc:
        conn.execute("ROLLBACK TO job")
        conn.execute("RELEASE job")
        return False, exc
    conn.execute("RELEASE job")
    return True, result


def _resolve(fut: Future[Any], ok: bool, value: Any) -> None:
    """Set a job's outcome unless its waiter gave up (cancelled futures are left alone)."""
    if fut.cancelled():
        return
    try:
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)
    except Exception:  # cancelled between the check and the set
        return
