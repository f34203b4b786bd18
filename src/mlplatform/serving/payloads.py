"""The payload log: every inference request and response, and the ground truth sent later.

One SQLite file in WAL mode with ``synchronous=FULL``. All writes go through one writer
thread that commits whatever is queued as one transaction (group commit); a write's
future resolves only after its transaction is on disk, so a logged row is never lost,
and each write sits in its own savepoint, so one bad row (a repeated request id) does not
fail its neighbours. Reads open their own short-lived connection (WAL readers never block
the writer). The same schema is written on the cluster by :mod:`mlplatform.serving.sink`.

Example::

    store = PayloadStore(Path("artifacts/payloads.db"))
    store.log(PayloadRecord("r1", time.time(), "house-price", "stable", "3", "predict", 200,
                            4.2, 1, '{"instances": [[1, 2]]}', '{"predictions": [3.5]}'))
    store.add_feedback("r1", 3.7)
    store.window(0, time.time())[["variant", "feature.0", "prediction", "label"]]
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from contextlib import closing
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import orjson
import pandas as pd

from mlplatform.errors import PlatformError

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS payloads (
    request_id TEXT PRIMARY KEY, ts REAL, model TEXT, variant TEXT, model_version TEXT,
    endpoint TEXT, status INTEGER, latency_ms REAL, n_instances INTEGER,
    request TEXT, response TEXT, error TEXT
);
CREATE INDEX IF NOT EXISTS payloads_ts ON payloads (ts);
CREATE TABLE IF NOT EXISTS feedback (
    request_id TEXT NOT NULL, ts REAL NOT NULL, label TEXT, PRIMARY KEY (request_id, ts)
);
"""


class PayloadLogError(PlatformError):
    """The payload log could not store a row (closed store, disk full, locked file)."""


class UnknownRequestError(PayloadLogError):
    """Feedback names request ids that are not in the payload log."""

    def __init__(self, missing: Sequence[str]) -> None:
        self.missing = list(missing)
        super().__init__(
            f"unknown request id(s) {self.missing}: not in the payload log "
            "(use the x-request-id header of the prediction's response)"
        )


class DuplicateRequestError(PayloadLogError):
    """A request id was logged twice; request ids must be unique."""


@dataclass(frozen=True)
class PayloadRecord:
    """One row of ``payloads``: a request, its response (or error) and where it was served."""

    request_id: str
    ts: float
    model: str
    variant: str | None
    model_version: str | None
    endpoint: str
    status: int | None
    latency_ms: float | None
    n_instances: int | None
    request: str | None
    response: str | None
    error: str | None = None


COLUMNS = tuple(f.name for f in fields(PayloadRecord))
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


# -- decoding bodies into feature rows and predictions (KServe v1 and Open Inference v2) ----
def _loads(text: str | None) -> Any:
    if not text:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


def _v2_rows(tensors: list[Any]) -> list[Any] | None:
    """Rows of an OIP v2 ``inputs``/``outputs`` list: one tensor of shape (n, d) → n rows of d
    values ((n,) or (n, 1) → n scalars); several tensors → one dict per row keyed by name."""
    try:
        arrays = {t["name"]: np.asarray(t["data"]).reshape(t["shape"]) for t in tensors}
        cols = {k: a.reshape(a.shape[0], -1) for k, a in arrays.items()}
    except (KeyError, TypeError, ValueError, IndexError):
        return None
    if len(cols) == 1:
        (a,) = cols.values()
        rows: list[Any] = (a[:, 0] if a.shape[1] == 1 else a).tolist()
        return rows
    n = min(a.shape[0] for a in cols.values())
    return [{k: a[i, 0].item() for k, a in cols.items()} for i in range(n)]


def decode_instances(text: str | None) -> list[Any] | None:
    """The instances of a v1 (``instances``) or v2 (``inputs``) request body, else None."""
    body = _loads(text)
    if not isinstance(body, dict):
        return None
    if isinstance(body.get("instances"), list):
        return list(body["instances"])
    if isinstance(body.get("inputs"), list):
        return _v2_rows(body["inputs"])
    return None


def decode_predictions(text: str | None) -> list[Any] | None:
    """The predictions of a v1 (``predictions``) or v2 (first of ``outputs``) response."""
    body = _loads(text)
    if not isinstance(body, dict):
        return None
    if isinstance(body.get("predictions"), list):
        return list(body["predictions"])
    if isinstance(body.get("outputs"), list) and body["outputs"]:
        return _v2_rows(body["outputs"][:1])
    return None


def _features(instance: Any, names: Sequence[str] | None) -> dict[str, Any]:
    if isinstance(instance, dict):
        return {f"feature.{k}": v for k, v in instance.items()}
    values = instance if isinstance(instance, list) else [instance]
    keys = names if names is not None and len(names) == len(values) else range(len(values))
    return {f"feature.{k}": v for k, v in zip(keys, values, strict=True)}


def _labels(label: Any, n: int) -> list[Any]:
    if isinstance(label, list):
        return label if len(label) == n else [np.nan] * n
    return [np.nan if label is None else label] * n


def instance_rows(rec: dict[str, Any], names: Sequence[str] | None) -> list[dict[str, Any]]:
    """Split one ``requests()`` row into one row per instance (see :meth:`PayloadStore.window`)."""
    meta = {k: rec[k] for k in COLUMNS if k not in ("request", "response")}
    instances = decode_instances(rec["request"]) or [None]
    preds = decode_predictions(rec["response"]) or []
    labels = _labels(rec["label"], len(instances))
    rows = []
    for i, inst in enumerate(instances):
        row = {**meta, "instance": i, **({} if inst is None else _features(inst, names))}
        row["prediction"] = preds[i] if i < len(preds) else np.nan
        row["label"] = labels[i]
        rows.append(row)
    return rows
