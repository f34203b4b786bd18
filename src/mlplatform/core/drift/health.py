"""Health of the serving path over a window: request count, errors and latency percentiles.

>>> system_health([1.0, 3.0], [200, 503]).error_rate
0.5
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike


@dataclass(frozen=True)
class SystemHealth:
    """Requests, errors (status ≥ 500 or no response) and latency percentiles of a window."""

    requests: int
    errors: int
    error_rate: float
    p50_latency_ms: float | None
    p95_latency_ms: float | None


def system_health(latency_ms: ArrayLike, status: ArrayLike) -> SystemHealth:
    """latency_ms (n,), status (n,): one entry per request; a missing status (no response)
    counts as an error, as in the rollout statistics. Percentiles are numpy's linear ones over
    the known latencies."""
    lat = np.asarray(latency_ms, np.float64)
    code = np.asarray(status, np.float64)
    errors = int(np.sum(~np.isfinite(code) | (code >= 500)))
    lat = lat[np.isfinite(lat)]
    p50, p95 = (float(v) for v in np.percentile(lat, [50, 95])) if lat.size else (None, None)
    rate = errors / code.size if code.size else 0.0
    return SystemHealth(int(code.size), errors, rate, p50, p95)
