"""One alert as the store returns it (:class:`AlertRecord`), and a row of ``alerts`` → record."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlplatform.core.alerts import AlertStatus, Window


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
    failures: int = 0  # starts that failed (alerts_0002)
    last_error: str | None = None

    @property
    def window(self) -> Window:
        return Window(self.window_start, self.window_end)


@dataclass(frozen=True)
class RecordOutcome:
    """The alert row of a window and whether this call created it."""

    alert: AlertRecord
    created: bool


def alert_from_row(row: Mapping[Any, Any]) -> AlertRecord:
    """The record of one ``alerts`` row (JSON text columns decoded)."""
    values = dict(row)
    for key in ("reasons", "model_versions"):
        values[key] = tuple(json.loads(values[key]))
    values["evidence"] = json.loads(values["evidence"])
    return AlertRecord(**values)
