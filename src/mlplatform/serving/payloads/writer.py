"""The payload log's group commit: what the writer thread does with one batch of jobs.

Every job of a batch commits in ONE transaction (one fsync on SQLite, one WAL flush on
PostgreSQL), and each job's future resolves only after that commit, so a logged row is never
lost. The row writes of one statement run as one ``executemany``; if that fails,
its rows are retried one by one, each in its own savepoint, so one bad row (a repeated request
id) fails alone and its neighbours are stored. A function job runs in its own savepoint too.

Several writers share one PostgreSQL database on the cluster (the sink's replicas, each with
its own writer), and KServe's agent posts the two halves of a request to whichever replica the
Service picks, so two batches can lock the same rows. The rows of each statement are written in
request-id order, so two batches never cross inside one statement; they can still cross between
statements (one batch's requests against the other's responses), and PostgreSQL then aborts
one transaction as a deadlock. That batch is run again, whole, after a short random pause (up to
:data:`ATTEMPTS` times): a deadlock costs a retry, never an event, since the agent does not
resend a post that failed.
"""

from __future__ import annotations

import queue
import random
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from time import monotonic
from typing import Any

import sqlalchemy as sa

from mlplatform.errors import DuplicateRequestError, PayloadLogError
from mlplatform.serving.payloads.compaction import compact_blocks

Outcome = tuple[bool, Any]
#: Runs of one batch before a deadlock or serialization failure is reported to its jobs.
ATTEMPTS = 8
#: PostgreSQL's ``deadlock_detected`` and ``serialization_failure``: the transaction was
#: aborted for the sake of another one and succeeds when run again.
RETRYABLE = frozenset({"40P01", "40001"})


@dataclass(frozen=True)
class Write:
    """One row of parameters for ``statement``; ``key`` names it in a conflict error. With
    ``bulk``, the rows queued together with the same ``bulk`` are written by
    ``bulk(conn, rows)`` (e.g. one statement taking all rows as one parameter, and blocks:
    :mod:`.blocks`) instead of an ``executemany``; if that fails, each row is written alone
    with its own ``statement``."""

    statement: sa.Executable
    params: dict[str, Any]
    key: str
    bulk: Callable[[sa.Connection, list[dict[str, Any]]], None] | None = None
    #: ``bulk`` is one statement: a batch of nothing but rows of this ``bulk`` is run as that
    #: statement alone on the writer's autocommit connection (its own transaction), one round
    #: trip instead of BEGIN, SAVEPOINT, the statement, RELEASE and COMMIT.
    solo: bool = False


@dataclass(frozen=True)
class Job:
    """A queued unit of work: a row to write, or a function to run on the connection."""

    future: Future[Any]
    write: Write | None = None
    fn: Callable[[sa.Connection], Any] | None = field(default=None)


def writer_loop(
    conn: sa.Connection,
    jobs_in: queue.SimpleQueue[Job | None],
    batch_max: int,
    where: str,
    every: float | None,
    solo: sa.Connection | None = None,
) -> None:
    """The writer thread: commit whatever is queued, up to ``batch_max`` jobs a batch, until a
    ``None`` arrives; with ``every`` (PostgreSQL), also merge small blocks every ``every``
    seconds, and whenever the queue has been idle that long (:mod:`.compaction`). ``solo``
    is an autocommit connection for batches that are one statement (:attr:`Write.solo`)."""
    last = monotonic()
    while True:
        try:
            jobs = [jobs_in.get(timeout=every)]
        except queue.Empty:  # idle: a turn to merge small blocks
            jobs = []
        while jobs and len(jobs) < batch_max:
            try:
                jobs.append(jobs_in.get_nowait())
            except queue.Empty:
                break
        commit_batch(conn, [j for j in jobs if j is not None], where, solo)
        if None in jobs:
            return
        if every is not None and monotonic() - last >= every:
            commit_batch(conn, [Job(Future(), fn=compact_blocks)], where)
            last = monotonic()


def solo_connection(engine: sa.Engine) -> AbstractContextManager[sa.Connection | None]:
    """The writer's autocommit connection for one-statement batches (PostgreSQL; on SQLite a
    batch is one transaction, one fsync, whatever it holds)."""
    if engine.dialect.name != "postgresql":
        return nullcontext(None)
    return engine.execution_options(isolation_level="AUTOCOMMIT").connect()


def commit_batch(
    conn: sa.Connection, jobs: list[Job], where: str, solo: sa.Connection | None = None
) -> None:
    """Run ``jobs`` in one transaction on the writer's connection (or as one statement on
    ``solo``, see :attr:`Write.solo`), then resolve their futures."""
    if not jobs:
        return
    for attempt in range(1, ATTEMPTS + 1):
        try:
            done = _alone(solo, jobs) or _commit(conn, jobs)
            break
        except sa.exc.SQLAlchemyError as exc:
            if retryable(exc) and attempt < ATTEMPTS:
                time.sleep(random.uniform(0, 0.005 * 2**attempt))  # let the other one finish
                continue
            error = PayloadLogError(f"payload log {where}: commit failed: {first_cause(exc)}")
            done = [(job, (False, error)) for job in jobs]
            break
    for job, (ok, value) in done:
        _resolve(job.future, ok, value)


def _alone(solo: sa.Connection | None, jobs: list[Job]) -> list[tuple[Job, Outcome]] | None:
    """The batch run as its one statement on the autocommit connection ``solo``, when every
    job is a row of the same one-statement bulk write; None when it is not, or when the
    statement failed for a row's sake (nothing was written: the transaction path then finds
    the bad rows)."""
    first = jobs[0].write
    if solo is None or first is None or not first.solo:
        return None
    if any(job.write is None or job.write.bulk is not first.bulk for job in jobs):
        return None
    group = _by_key(jobs)
    assert first.bulk is not None
    try:
        with solo.begin():  # autocommit: no BEGIN or COMMIT is sent
            first.bulk(solo, [job.write.params for job in group if job.write])
    except sa.exc.DBAPIError as exc:
        if retryable(exc):
            raise  # the whole batch runs again (commit_batch)
        return None
    return [(job, (True, None)) for job in group]


def _commit(conn: sa.Connection, jobs: list[Job]) -> list[tuple[Job, Outcome]]:
    done: list[tuple[Job, Outcome]] = []
    with conn.begin():
        for group in _groups(jobs):
            done.extend(zip(group, _run_group(conn, group), strict=True))
    return done


def retryable(exc: BaseException) -> bool:
    """True for an error that aborted the transaction for another's sake (a deadlock, a
    serialization failure): the same transaction succeeds when run again."""
    return getattr(getattr(exc, "orig", None), "sqlstate", None) in RETRYABLE


def _groups(jobs: list[Job]) -> Iterator[list[Job]]:
    """The writes between two function jobs grouped by statement, or by bulk write (queue
    order within each), and every function job alone, in its place. Rows of different groups
    between two function jobs are independent (a sink's two halves merge in either order)."""
    writes: dict[int, list[Job]] = {}
    for job in jobs:
        if job.write is not None:
            writes.setdefault(_group_of(job.write), []).append(job)
            continue
        yield from map(_by_key, writes.values())
        writes = {}
        yield [job]
    yield from map(_by_key, writes.values())


def _group_of(write: Write) -> int:
    """Rows with the same ``bulk`` are written together (a sink's two halves: one merge), the
    others by statement."""
    return id(write.bulk) if write.bulk is not None else id(write.statement)


def _by_key(group: list[Job]) -> list[Job]:
    """One statement's rows in key order (stable: a repeated key keeps its queue order), so
    that two writers' statements lock shared rows in the same order."""
    return sorted(group, key=lambda job: job.write.key if job.write else "")


def _run_group(conn: sa.Connection, group: list[Job]) -> list[Outcome]:
    if group[0].write is None:
        return [_in_savepoint(conn, group[0])]
    bulk = group[0].write.bulk
    if len(group) > 1 or bulk is not None:
        rows = [j.write.params for j in group if j.write]
        try:
            with conn.begin_nested():
                if bulk is None:
                    conn.execute(group[0].write.statement, rows)
                else:
                    bulk(conn, rows)
            return [(True, None)] * len(group)
        except sa.exc.DBAPIError as exc:
            if retryable(exc):
                raise  # the whole batch runs again (commit_batch)
            # otherwise find the bad rows: each alone below
    return [_in_savepoint(conn, job) for job in group]


def _in_savepoint(conn: sa.Connection, job: Job) -> Outcome:
    """Run one job so that its failure undoes only its own writes: (ok, result or error)."""
    try:
        with conn.begin_nested():
            if job.write is None:
                assert job.fn is not None
                return True, job.fn(conn)
            conn.execute(job.write.statement, job.write.params)
            return True, None
    except sa.exc.IntegrityError as exc:
        if job.write is None:
            return False, PayloadLogError(f"payload log: {exc.orig}")
        return False, DuplicateRequestError(
            f"request id {job.write.key!r} is already in the payload log; "
            "send a unique x-request-id per request"
        )
    except sa.exc.SQLAlchemyError as exc:
        if retryable(exc):
            raise  # the whole batch runs again (commit_batch)
        return False, PayloadLogError(f"payload log: write failed: {first_cause(exc)}")
    except Exception as exc:  # the job's own error (e.g. UnknownRequestError), for its caller
        return False, exc


def first_cause(exc: BaseException) -> str:
    """The earliest database error behind ``exc``: a write that fails for want of space makes
    SQLite roll the transaction back itself, so undoing the savepoint then fails too ("no such
    savepoint") and would hide why."""
    first, seen = exc, exc.__context__
    while seen is not None:
        if isinstance(seen, sa.exc.DBAPIError):
            first = seen
        seen = seen.__context__
    orig = getattr(first, "orig", None) or first
    return f"{type(orig).__name__}: {orig}"


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
