"""Durable drift alerts and the retrain claims on them, in one database chosen by URL
(``monitor.alert_store``: a SQLite file embedded, PostgreSQL on the cluster).

Each guarantee is one statement the database itself enforces, so it holds across threads,
processes and pods; the decisions are the pure rules of :mod:`mlplatform.core.alerts`.

* :meth:`AlertStore.record` writes at most one row per (model, window): the UNIQUE key with
  ``INSERT ... ON CONFLICT DO NOTHING``, then a read; a rerun of the monitor gets the row that
  exists. A window inside the cooldown of a fired alert is stored ``suppressed`` (evidence
  kept, never claimable); on PostgreSQL a per-model advisory lock orders the cooldown check.
* The retrain trigger loops over :meth:`~AlertStore.claimable`, wins an alert with
  :meth:`~AlertStore.claim_for_retrain`, ONE conditional ``UPDATE ... RETURNING`` (open, or
  claimed with an expired lease) measured on the database's clock: one winner. While it starts
  the run it calls :meth:`~AlertStore.heartbeat` to extend the lease, then records the run
  with :meth:`~AlertStore.record_run`; :meth:`~AlertStore.runs_pending` lists started runs
  until :meth:`~AlertStore.resolve`. A claim whose lease expired (the claimer crashed) can be
  claimed again. Alert ids are global to the database.

Example::

    store = AlertStore("sqlite:///artifacts/alerts.db", lease_seconds=3600)
    outcome = store.record("house-price", window, ("data_drift",), evidence, ["3"], now, 86400)
    if store.claim_for_retrain(outcome.alert.alert_id, owner="trigger-1"):
        store.record_run(outcome.alert.alert_id, run_id, owner="trigger-1")

Every ``now`` parameter defaults to the database's clock; tests pass one to step time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from mlplatform.core.alerts import AlertStatus, Window, check_transition, cooldown_blocker
from mlplatform.errors import AlertLeaseLostError, AlertNotFoundError, AlertStoreError
from mlplatform.monitoring.alert_records import AlertRecord, RecordOutcome, alert_from_row
from mlplatform.stores import begin_write, clock, greatest, insert_for, migrate, open_engine
from mlplatform.stores import store_url as _store_url
from mlplatform.stores.schema import alerts

__all__ = ["AlertRecord", "AlertStore", "RecordOutcome"]
A = alerts.c
WINDOW_KEY = ["model", "window_start", "window_end"]


class AlertStore:
    """Alerts of one database; safe to share between threads, processes and pods."""

    def __init__(self, url: str | Path, lease_seconds: float = 3600.0) -> None:
        self.url = _store_url(url)
        self.lease_seconds = lease_seconds
        self.engine = open_engine(self.url)
        migrate(self.engine, "alerts")
        self.dialect = self.engine.dialect.name

    def close(self) -> None:
        """Release the pooled connections (the store stays usable: they reopen on demand)."""
        self.engine.dispose()

    def __enter__(self) -> AlertStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sa.exc.SQLAlchemyError as exc:
            raise AlertStoreError(f"alert store {self.engine.url}: {exc}") from exc

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        with self._errors(), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        """One transaction; on SQLite it holds the write lock from its first statement."""
        with self._errors(), begin_write(self.engine) as conn:
            yield conn

    def _now(self, now: float | None) -> sa.ColumnElement[float]:
        return clock(self.dialect, now)

    # -- reading ---------------------------------------------------------------------------
    def _get(self, conn: sa.Connection, alert_id: int, lock: bool = False) -> AlertRecord:
        query = sa.select(alerts).where(A.alert_id == alert_id)
        row = conn.execute(query.with_for_update() if lock else query).mappings().first()
        if row is None:
            raise AlertNotFoundError(f"no alert with id {alert_id} in {self.engine.url}")
        return alert_from_row(row)

    def get(self, alert_id: int) -> AlertRecord:
        with self._read() as conn:
            return self._get(conn, alert_id)

    def _select(self, *where: sa.ColumnElement[bool]) -> list[AlertRecord]:
        query = sa.select(alerts).where(*where).order_by(A.window_end, A.alert_id)
        with self._read() as conn:
            return [alert_from_row(r) for r in conn.execute(query).mappings()]

    def alerts(
        self, model: str | None = None, status: AlertStatus | None = None
    ) -> list[AlertRecord]:
        """Every row (optionally of one model and/or status), oldest window first."""
        where = [c == v for c, v in ((A.model, model), (A.status, status)) if v is not None]
        return self._select(*where)

    def _claimable(self, now: float | None) -> sa.ColumnElement[bool]:
        expired = (A.status == "claimed") & (A.lease_expires <= self._now(now))
        return (A.status == "open") | expired

    def claimable(self, now: float | None = None) -> list[AlertRecord]:
        """Open alerts and claimed ones whose lease has expired: what a trigger should try."""
        return self._select(self._claimable(now))

    def runs_pending(self) -> list[AlertRecord]:
        """Alerts whose retraining run has started and not been resolved yet."""
        return self._select(A.status == "run_started")

    # -- writing ---------------------------------------------------------------------------
    def record(
        self,
        model: str,
        window: Window,
        reasons: Sequence[str],
        evidence: dict[str, Any],
        model_versions: Sequence[str],
        now: float,
        cooldown_seconds: float,
    ) -> RecordOutcome:
        """The window's alert: the existing row, or a new ``open`` one, or a new ``suppressed``
        one when a fired alert of the model ends within ``cooldown_seconds`` of this window."""
        key = (A.model == model, A.window_start == window.start, A.window_end == window.end)
        with self._write() as conn:
            if self.dialect == "postgresql":  # one cooldown decision at a time per model
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_model_lock(model))))
            found = conn.execute(sa.select(alerts).where(*key)).mappings().first()
            if found is not None:
                return RecordOutcome(alert_from_row(found), created=False)
            fired = conn.execute(
                sa.select(A.alert_id, A.window_start, A.window_end).where(
                    A.model == model,
                    A.status != "suppressed",
                    A.window_end > window.end - cooldown_seconds,
                    A.window_end < window.end + cooldown_seconds,
                )
            ).all()
            blocker = cooldown_blocker(
                window, ((r[0], Window(r[1], r[2])) for r in fired), cooldown_seconds
            )
            row = {
                "model": model,
                "window_start": window.start,
                "window_end": window.end,
                "status": "open" if blocker is None else "suppressed",
                "reasons": json.dumps(list(reasons)),
                "evidence": json.dumps(evidence, sort_keys=True),
                "model_versions": json.dumps(list(model_versions)),
                "created_at": now,
                "suppressed_by": blocker,
            }
            insert = insert_for(self.dialect, alerts).values(**row)
            once = insert.on_conflict_do_nothing(index_elements=WINDOW_KEY).returning(*alerts.c)
            created = conn.execute(once).mappings().first()
            if created is not None:
                return RecordOutcome(alert_from_row(created), created=True)
            existing = conn.execute(sa.select(alerts).where(*key)).mappings().one()
            return RecordOutcome(alert_from_row(existing), created=False)

    def claim_for_retrain(self, alert_id: int, owner: str, now: float | None = None) -> bool:
        """Claim the alert for one retraining run: one conditional UPDATE, so True for exactly
        one caller while the claim holds; after ``lease_seconds`` without a :meth:`heartbeat`
        or :meth:`record_run` it can be claimed again."""
        t = self._now(now)
        stmt = (
            sa.update(alerts)
            .where(A.alert_id == alert_id, self._claimable(now))
            .values(
                status="claimed",
                claim_owner=owner,
                claimed_at=t,
                lease_expires=t + self.lease_seconds,
                claims=A.claims + 1,
            )
            .returning(A.alert_id)
        )
        with self._write() as conn:
            if conn.execute(stmt).first() is not None:
                return True
            self._get(conn, alert_id)  # AlertNotFoundError when there is no such alert
            return False

    def heartbeat(self, alert_id: int, owner: str, now: float | None = None) -> bool:
        """Extend ``owner``'s claim to ``lease_seconds`` from now (never shorten it). False when
        the alert is not claimed by ``owner`` any more (the run must not be started)."""
        until = self._now(now) + self.lease_seconds
        stmt = (
            sa.update(alerts)
            .where(A.alert_id == alert_id, A.status == "claimed", A.claim_owner == owner)
            .values(lease_expires=greatest(sa.func.coalesce(A.lease_expires, until), until))
            .returning(A.alert_id)
        )
        with self._write() as conn:
            return conn.execute(stmt).first() is not None

    def record_run(
        self, alert_id: int, run_id: str, owner: str | None = None, now: float | None = None
    ) -> None:
        """Mark the claimed alert ``run_started`` with its run id (repeating the same call is a
        no-op). With ``owner``, fail with :class:`AlertLeaseLostError` if someone else holds it."""
        with self._write() as conn:
            alert = self._get(conn, alert_id, lock=True)
            if alert.status == "run_started" and alert.run_id == run_id:
                return
            check_transition(alert.status, "run_started")
            if owner is not None and alert.claim_owner != owner:
                raise AlertLeaseLostError(
                    f"alert {alert_id} is claimed by {alert.claim_owner!r}, not {owner!r} "
                    "(the lease expired and it was claimed again); do not start a run"
                )
            conn.execute(
                sa.update(alerts)
                .where(A.alert_id == alert_id)
                .values(status="run_started", run_id=run_id, run_started_at=self._now(now))
            )

    def retry_later(
        self, alert_id: int, owner: str, error: str, delay: float, now: float | None = None
    ) -> bool:
        """A start that failed for a transient reason: the alert stays ``claimed`` with its
        lease ending ``delay`` seconds from now, so any trigger may claim it again then; one
        more failure and the error are recorded. False if ``owner`` lost the claim."""
        stmt = (
            sa.update(alerts)
            .where(A.alert_id == alert_id, A.status == "claimed", A.claim_owner == owner)
            .values(
                lease_expires=self._now(now) + delay,
                failures=A.failures + 1,
                last_error=error[:2000],
            )
            .returning(A.alert_id)
        )
        with self._write() as conn:
            return conn.execute(stmt).first() is not None

    def fail(self, alert_id: int, owner: str, error: str) -> None:
        """Close a claimed alert as ``failed`` with the error (a permanent reason, or the
        retries ran out); :class:`AlertLeaseLostError` if ``owner`` does not hold it."""
        with self._write() as conn:
            alert = self._get(conn, alert_id, lock=True)
            check_transition(alert.status, "failed")
            if alert.claim_owner != owner:
                raise AlertLeaseLostError(
                    f"alert {alert_id} is claimed by {alert.claim_owner!r}, not {owner!r}"
                )
            conn.execute(
                sa.update(alerts)
                .where(A.alert_id == alert_id)
                .values(status="failed", failures=A.failures + 1, last_error=error[:2000])
            )

    def resolve(self, alert_id: int, model_version: str, now: float | None = None) -> None:
        """Close the alert with the model version its run produced (idempotent)."""
        with self._write() as conn:
            alert = self._get(conn, alert_id, lock=True)
            if alert.status == "resolved" and alert.resolved_version == model_version:
                return
            check_transition(alert.status, "resolved")
            conn.execute(
                sa.update(alerts)
                .where(A.alert_id == alert_id)
                .values(
                    status="resolved", resolved_version=model_version, resolved_at=self._now(now)
                )
            )


def _model_lock(model: str) -> sa.ColumnElement[int]:
    """The advisory-lock key of one model's alerts (PostgreSQL's own string hash)."""
    return sa.func.hashtext("mlplatform.alerts:" + model)
