"""Durable drift alerts and the retrain claims on them, in one SQLite file (WAL).

The same schema serves the embedded default and the cluster. Every state change runs in a
``BEGIN IMMEDIATE`` transaction, so the read-decide-write of one call is atomic across
threads and processes; the decisions themselves are the pure rules of
:mod:`mlplatform.core.alerts`.

* :meth:`AlertStore.record` writes at most one row per (model, window): a rerun of the
  monitor returns the row that exists; a window inside the cooldown of a fired alert is stored
  as ``suppressed`` (evidence kept, never claimable).
* The retrain trigger loops over :meth:`~AlertStore.claimable`, wins an alert with
  :meth:`~AlertStore.claim_for_retrain` (one winner), starts one run and records it with
  :meth:`~AlertStore.record_run`; :meth:`~AlertStore.runs_pending` lists started runs until
  :meth:`~AlertStore.resolve`. A claim whose lease expired without a run (the claimer
  crashed) can be claimed again.

Example::

    store = AlertStore(Path("artifacts/alerts.db"), lease_seconds=3600)
    outcome = store.record("house-price", window, ("data_drift",), evidence, ["3"], now, 86400)
    if store.claim_for_retrain(outcome.alert.alert_id, owner="trigger-1"):
        store.record_run(outcome.alert.alert_id, run_id, owner="trigger-1")
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlplatform.core.alerts import (
    AlertStatus,
    Window,
    can_claim,
    check_transition,
    cooldown_blocker,
)
from mlplatform.errors import AlertLeaseLostError, AlertNotFoundError, AlertStoreError

SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    alert_id INTEGER PRIMARY KEY AUTOINCREMENT,
    model TEXT NOT NULL,
    window_start REAL NOT NULL,
    window_end REAL NOT NULL,
    status TEXT NOT NULL
        CHECK (status IN ('open', 'claimed', 'run_started', 'resolved', 'suppressed')),
    reasons TEXT NOT NULL,
    evidence TEXT NOT NULL,
    model_versions TEXT NOT NULL,
    created_at REAL NOT NULL,
    suppressed_by INTEGER REFERENCES alerts (alert_id),
    claim_owner TEXT,
    claimed_at REAL,
    lease_expires REAL,
    claims INTEGER NOT NULL DEFAULT 0,
    run_id TEXT,
    run_started_at REAL,
    resolved_version TEXT,
    resolved_at REAL,
    UNIQUE (model, window_start, window_end)
);
CREATE INDEX IF NOT EXISTS alerts_model_end ON alerts (model, window_end);
CREATE INDEX IF NOT EXISTS alerts_status ON alerts (status);
"""


@dataclass(frozen=True)
class AlertRecord:
    """One row of ``alerts``."""

    alert_id: int
    model: str
    window_start: float
    window_end: float
    status: AlertStatus
    reasons: tuple[str, ...]
    evidence: dict[str, Any]
    model_versions: tuple[str, ...]
    created_at: float
    suppressed_by: int | None
    claim_owner: str | None
    claimed_at: float | None
    lease_expires: float | None
    claims: int
    run_id: str | None
    run_started_at: float | None
    resolved_version: str | None
    resolved_at: float | None

    @property
    def window(self) -> Window:
        return Window(self.window_start, self.window_end)


@dataclass(frozen=True)
class RecordOutcome:
    """The alert row of a window and whether this call created it."""

    alert: AlertRecord
    created: bool


def _record(row: sqlite3.Row) -> AlertRecord:
    values = dict(row)
    for key in ("reasons", "model_versions"):
        values[key] = tuple(json.loads(values[key]))
    values["evidence"] = json.loads(values["evidence"])
    return AlertRecord(**values)


class AlertStore:
    """Alerts of one SQLite file; safe to share between threads and processes."""

    def __init__(self, path: Path, lease_seconds: float = 3600.0) -> None:
        self.path = Path(path)
        self.lease_seconds = lease_seconds
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connection() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(SCHEMA)

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        try:
            with closing(sqlite3.connect(self.path, timeout=30, isolation_level=None)) as conn:
                conn.row_factory = sqlite3.Row
                conn.execute("PRAGMA synchronous=FULL")
                yield conn
        except sqlite3.Error as exc:
            raise AlertStoreError(f"alert store {self.path}: {exc}") from exc

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction holding SQLite's write lock from its first statement."""
        with self._connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # -- reading ---------------------------------------------------------------------------
    def _get(self, conn: sqlite3.Connection, alert_id: int) -> AlertRecord:
        row = conn.execute("SELECT * FROM alerts WHERE alert_id = ?", (alert_id,)).fetchone()
        if row is None:
            raise AlertNotFoundError(f"no alert with id {alert_id} in {self.path}")
        return _record(row)

    def get(self, alert_id: int) -> AlertRecord:
        with self._connection() as conn:
            return self._get(conn, alert_id)

    def _select(self, where: str = "1", params: Sequence[Any] = ()) -> list[AlertRecord]:
        with self._connection() as conn:
            sql = f"SELECT * FROM alerts WHERE {where} ORDER BY window_end, alert_id"
            return [_record(r) for r in conn.execute(sql, params)]

    def alerts(
        self, model: str | None = None, status: AlertStatus | None = None
    ) -> list[AlertRecord]:
        """Every row (optionally of one model and/or status), oldest window first."""
        where = " AND ".join(
            c for c, v in (("model = ?", model), ("status = ?", status)) if v is not None
        )
        return self._select(where or "1", [v for v in (model, status) if v is not None])

    def claimable(self, now: float | None = None) -> list[AlertRecord]:
        """Open alerts and claimed ones whose lease has expired: what a trigger should try."""
        t = time.time() if now is None else now
        return self._select("status = 'open' OR (status = 'claimed' AND lease_expires <= ?)", [t])

    def runs_pending(self) -> list[AlertRecord]:
        """Alerts whose retraining run has started and not been resolved yet."""
        return self._select("status = 'run_started'")

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
        key = (model, window.start, window.end)
        with self._write() as conn:
            found = conn.execute(
                "SELECT * FROM alerts WHERE model = ? AND window_start = ? AND window_end = ?", key
            ).fetchone()
            if found is not None:
                return RecordOutcome(_record(found), created=False)
            fired = conn.execute(
                "SELECT alert_id, window_start, window_end FROM alerts WHERE model = ? "
                "AND status != 'suppressed' AND window_end > ? AND window_end < ?",
                (model, window.end - cooldown_seconds, window.end + cooldown_seconds),
            ).fetchall()
            blocker = cooldown_blocker(
                window, ((r[0], Window(r[1], r[2])) for r in fired), cooldown_seconds
            )
            cur = conn.execute(
                "INSERT INTO alerts (model, window_start, window_end, status, reasons, evidence, "
                "model_versions, created_at, suppressed_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    *key,
                    "open" if blocker is None else "suppressed",
                    json.dumps(list(reasons)),
                    json.dumps(evidence, sort_keys=True),
                    json.dumps(list(model_versions)),
                    now,
                    blocker,
                ),
            )
            return RecordOutcome(self._get(conn, int(cur.lastrowid or 0)), created=True)

    def claim_for_retrain(self, alert_id: int, owner: str, now: float | None = None) -> bool:
        """Claim the alert for one retraining run. True for exactly one caller while the claim
        holds; after ``lease_seconds`` without :meth:`record_run` it can be claimed again."""
        t = time.time() if now is None else now
        with self._write() as conn:
            alert = self._get(conn, alert_id)
            if not can_claim(alert.status, alert.lease_expires, t):
                return False
            check_transition(alert.status, "claimed")
            conn.execute(
                "UPDATE alerts SET status = 'claimed', claim_owner = ?, claimed_at = ?, "
                "lease_expires = ?, claims = claims + 1 WHERE alert_id = ?",
                (owner, t, t + self.lease_seconds, alert_id),
            )
            return True

    def record_run(
        self, alert_id: int, run_id: str, owner: str | None = None, now: float | None = None
    ) -> None:
        """Mark the claimed alert ``run_started`` with its run id (repeating the same call is a
        no-op). With ``owner``, fail with :class:`AlertLeaseLostError` if someone else holds it."""
        t = time.time() if now is None else now
        with self._write() as conn:
            alert = self._get(conn, alert_id)
            if alert.status == "run_started" and alert.run_id == run_id:
                return
            check_transition(alert.status, "run_started")
            if owner is not None and alert.claim_owner != owner:
                raise AlertLeaseLostError(
                    f"alert {alert_id} is claimed by {alert.claim_owner!r}, not {owner!r} "
                    "(the lease expired and it was claimed again); do not start a run"
                )
            conn.execute(
                "UPDATE alerts SET status = 'run_started', run_id = ?, run_started_at = ? "
                "WHERE alert_id = ?",
                (run_id, t, alert_id),
            )

    def resolve(self, alert_id: int, model_version: str, now: float | None = None) -> None:
        """Close the alert with the model version its run produced (idempotent)."""
        t = time.time() if now is None else now
        with self._write() as conn:
            alert = self._get(conn, alert_id)
            if alert.status == "resolved" and alert.resolved_version == model_version:
                return
            check_transition(alert.status, "resolved")
            conn.execute(
                "UPDATE alerts SET status = 'resolved', resolved_version = ?, resolved_at = ? "
                "WHERE alert_id = ?",
                (model_version, t, alert_id),
            )
