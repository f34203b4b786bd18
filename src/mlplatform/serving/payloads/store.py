"""The payload log's store: one writer thread with group commit, short-lived readers
(see :mod:`mlplatform.serving.payloads`)."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pandas as pd
import sqlalchemy as sa

from mlplatform.errors import (
    ConfigError,
    LabelConflictError,
    PayloadLogError,
)
from mlplatform.serving.payloads.block_read import stored_blocks, stored_queries
from mlplatform.serving.payloads.blocks import (
    BulkWrite,
    insert_in_blocks,
    merge_in_blocks,
)
from mlplatform.serving.payloads.compact import encode_half, encode_record
from mlplatform.serving.payloads.compaction import EVERY, compact_blocks
from mlplatform.serving.payloads.decode import instance_rows
from mlplatform.serving.payloads.feedback import accept_feedback, insert_feedback
from mlplatform.serving.payloads.numeric import Block, numeric_frame, packed_block, row_blocks
from mlplatform.serving.payloads.records import COLUMNS, PayloadRecord
from mlplatform.serving.payloads.retention import (
    BATCH,
    PruneResult,
    age_cutoff,
    count_cutoff,
    delete_batch,
    drop_blocks,
)
from mlplatform.serving.payloads.statements import (
    INSERT_PAYLOAD,
    Half,
    upsert_feedback,
    upsert_half,
)
from mlplatform.serving.payloads.window_sql import (
    read_in_one_snapshot,
    requests_query,
    window_queries,
)
from mlplatform.serving.payloads.writer import Job, Write, solo_connection, writer_loop
from mlplatform.stores import bulk_read, migrate, open_engine, store_url
from mlplatform.stores.schema import payloads

T = TypeVar("T")
#: Slices of a window's rows without a block that the server packs, read at once on
#: PostgreSQL (:func:`~mlplatform.stores.bulk_read`) beside the blocks.
READ_SLICES = 1


class PayloadStore:
    """Durable, thread-safe payload log in the database at ``url`` (see the package docstring).

    ``url`` is a store URL (``sqlite:///...``, ``postgresql://...``) or the ``Path`` of a
    SQLite file; the tables are migrated to the newest schema on open.
    """

    def __init__(self, url: str | Path, batch_max: int = 512) -> None:
        self.url = store_url(url)
        self.engine = open_engine(self.url)
        migrate(self.engine, "payloads")
        self.dialect = self.engine.dialect.name
        self._batch_max = batch_max
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._closed = False
        self._lock = threading.Lock()
        self._writer: threading.Thread | None = None  # started by the first write

    def __repr__(self) -> str:
        return f"PayloadStore({self.engine.url})"

    # -- writing -------------------------------------------------------------------------
    def _submit(self, job: Job) -> None:
        with self._lock:
            if self._closed:
                raise PayloadLogError(f"payload log {self.engine.url} is closed")
            if self._writer is None:
                self._writer = threading.Thread(target=self._run, name="payload-writer")
                self._writer.daemon = True
                self._writer.start()
            self._queue.put(job)

    def transaction(self, fn: Callable[[sa.Connection], T]) -> Future[T]:
        """Run ``fn(conn)`` in the writer thread; the future resolves once it is committed."""
        fut: Future[T] = Future()
        self._submit(Job(fut, fn=fn))
        return fut

    def write(
        self,
        statement: sa.Executable,
        params: dict[str, Any],
        key: str,
        bulk: BulkWrite | None = None,
        solo: bool = False,
    ) -> Future[None]:
        """Queue one row of ``statement``; rows of one statement queued together are written
        with one ``executemany`` (or by ``bulk``, see :class:`Write`). ``key`` (the request
        id) names the row in a conflict error."""
        fut: Future[None] = Future()
        self._submit(Job(fut, write=Write(statement, params, key, bulk, solo)))
        return fut

    def log_async(self, record: PayloadRecord) -> Future[None]:
        """Queue one row (with its compact form, :mod:`.compact`); the future resolves when it
        is durable (DuplicateRequestError if its request id is already logged)."""
        bulk = insert_in_blocks(INSERT_PAYLOAD) if self.dialect == "postgresql" else None
        return self.write(INSERT_PAYLOAD, encode_record(asdict(record)), record.request_id, bulk)

    def log(self, record: PayloadRecord) -> None:
        """Store one row and return once it is durable."""
        self.log_async(record).result()

    def merge_async(self, half: Half, row: dict[str, Any]) -> Future[None]:
        """Merge one half of a logged request/response pair into its request's row
        (:func:`~mlplatform.serving.payloads.statements.upsert_half`), with its compact form."""
        bulk = merge_in_blocks() if self.dialect == "postgresql" else None
        params = encode_half(half, row)
        statement, key = upsert_half(self.dialect, half), row["request_id"]
        return self.write(statement, params, key, bulk, solo=True)

    def accept_feedback(self, items: Sequence[tuple[str, Any]]) -> list[tuple[str, Any]]:
        """Clients' labels, first label wins (:mod:`.feedback`): the labels stored now; another
        label is audited and a :class:`LabelConflictError`; an unknown id a 404, storing none."""
        now, stmt = time.time(), upsert_feedback(self.dialect)
        outcome = self.transaction(lambda conn: accept_feedback(conn, stmt, items, now)).result()
        if outcome.rejected:
            raise LabelConflictError(outcome.rejected)
        return outcome.stored

    def prune(
        self,
        model: str,
        now: float,
        retention_days: float,
        max_rows: int | None,
        keep_seconds: float = 0.0,
    ) -> PruneResult:
        """Delete ``model``'s requests older than ``retention_days`` and beyond its newest
        ``max_rows`` (:mod:`.retention`), never one logged within ``keep_seconds`` of ``now``
        (the monitor's reach): a cut-off inside it is a :class:`ConfigError`."""
        cutoff = age_cutoff(now, retention_days)
        if max_rows is not None:
            with self.engine.connect() as conn:
                by_count = count_cutoff(conn, model, max_rows)
            cutoff = cutoff if by_count is None else max(cutoff, by_count)
        if cutoff > now - keep_seconds:
            raise ConfigError(
                f"payload retention would delete requests the monitor still reads (the last "
                f"{keep_seconds:.0f} s): raise serve.payload_retention_days or "
                "serve.payload_max_rows"
            )
        self.transaction(lambda conn: drop_blocks(conn, model, cutoff)).result()
        requests = labels = 0
        while True:
            job = self.transaction(lambda conn: delete_batch(conn, model, cutoff))
            done, gone = job.result()
            requests, labels = requests + done, labels + gone
            if done < BATCH:
                return PruneResult(requests, labels, cutoff)

    def add_feedback(self, request_id: str, labels: Any) -> None:
        """Attach ground truth (a value, or a list with one label per instance)."""
        self.add_feedback_many([(request_id, labels)])

    def add_feedback_many(self, items: Sequence[tuple[str, Any]]) -> None:
        """Attach several labels at once: all are stored, or none if any id is unknown. A
        trusted, in-process write (tests, backfills): a newer label replaces the label the
        monitor reads. Servers take clients' labels with :meth:`accept_feedback` instead."""
        now = time.time()
        stmt = upsert_feedback(self.dialect)
        self.transaction(lambda conn: insert_feedback(conn, stmt, items, now)).result()

    def close(self) -> None:
        """Commit everything queued, then stop the writer and release the connections."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        if self._writer is not None:
            self._writer.join()
        self.engine.dispose()

    def __enter__(self) -> PayloadStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        every = EVERY if self.dialect == "postgresql" else None  # merges of small blocks
        with (
            self.engine.execution_options(sqlite_begin="IMMEDIATE").connect() as conn,
            solo_connection(self.engine) as solo,
        ):
            writer_loop(conn, self._queue, self._batch_max, str(self.engine.url), every, solo)

    def compact(self) -> int:
        """Merge the small blocks now (PostgreSQL; the writer does it every
        :data:`~.compaction.EVERY` seconds): the number of blocks merged away."""
        return 0 if self.dialect != "postgresql" else self.transaction(compact_blocks).result()

    # -- reading -------------------------------------------------------------------------
    def _read(self, query: Any, fetch: Callable[[sa.Engine, Any], Any] | None = None) -> Any:
        """The rows of ``query`` (``fetch(engine, query)`` instead when given); a database
        error is a PayloadLogError naming the store."""
        try:
            if fetch is None:
                with self.engine.connect() as conn:
                    return list(conn.execute(query))
            return fetch(self.engine, query)
        except sa.exc.SQLAlchemyError as exc:
            raise PayloadLogError(f"payload log {self.engine.url}: read failed: {exc}") from exc

    def count(self) -> int:
        """Number of logged requests."""
        return int(self._read(sa.select(sa.func.count()).select_from(payloads))[0][0])

    def ids(self) -> set[str]:
        return {r[0] for r in self._read(sa.select(payloads.c.request_id))}

    def requests(self, since: float, until: float, model: str | None = None) -> pd.DataFrame:
        """One row per request with ``since <= ts < until``, with its latest ``label`` (JSON
        decoded, None when unlabelled), oldest first."""
        query = requests_query(since, until, model)
        frame = pd.DataFrame([tuple(r) for r in self._read(query)], columns=[*COLUMNS, "label"])
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

    def numeric_window(
        self,
        since: float,
        until: float,
        model: str | None = None,
        feature_names: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """:meth:`window` without ``request``/``response`` parsing: the same rows and columns,
        with ``prediction`` and ``label`` as numbers (float64: the value, or the last class
        probability; NaN otherwise), ordered by time, read in bulk from the compact columns
        written at ingestion (:mod:`.numeric`). The monitor reads :meth:`window_blocks`."""
        return numeric_frame(self.window_blocks(since, until, model), feature_names)

    def window_blocks(self, since: float, until: float, model: str | None = None) -> list[Block]:
        """The requests in ``[since, until)`` as :class:`~.numeric.Block` s (one endpoint,
        model version and layout each, every column packed), in no set order: what
        :meth:`numeric_window` lays out per instance, and what the monitor reads. On
        PostgreSQL most come from the blocks written at ingestion (:mod:`.block_read`), the
        rest packed by the server; on SQLite every row is read one by one."""
        if self.dialect != "postgresql":
            (rows,) = self._read(window_queries(since, until, model, 0).all, bulk_read)
            return row_blocks(rows)
        queries = window_queries(since, until, model, READ_SLICES)
        data, labels, *packed, rows = self._read(
            [*stored_queries(since, until, model), *queries.all], read_in_one_snapshot
        )
        return [
            *stored_blocks(data, labels, since, until),
            *(packed_block(row) for table in packed for row in table),
            *row_blocks(rows),
        ]
