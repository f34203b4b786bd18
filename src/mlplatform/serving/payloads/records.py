"""What the payload log stores: the ``payloads``/``feedback`` schema, one row as
:class:`PayloadRecord` (its errors are in :mod:`mlplatform.errors`)."""

from __future__ import annotations

from dataclasses import dataclass, fields

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
