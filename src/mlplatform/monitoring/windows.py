"""Which window of the payload log the monitor judges, and its times as people read them.

Two kinds of default window (``--since``/``--until`` name any other, a backfill):

* **trailing** (``mlplatform monitor``): the last ``monitor.window_seconds`` up to now, the
  end on the next whole second, so a check right after sending traffic sees that traffic, and
  its printed ISO times, given back as ``--since``/``--until``, name the same window again;
* **aligned** (``mlplatform monitor --aligned``, the CronJob): the last complete window of the
  ``window_seconds`` grid ending ``window_lag_seconds`` before now
  (:func:`mlplatform.core.alerts.aligned_window`), so every scheduled run in the same period
  names the same window and (model, window) keys at most one alert.

>>> trailing_window(now=7_250.4, length=3_600)
Window(start=3651.0, end=7251.0)
>>> iso(7_251.0)
'1970-01-01T02:00:51Z'
>>> parse_time("1970-01-01T02:00:51Z"), parse_time("7251")
(7251.0, 7251.0)
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from mlplatform.config import MonitorConfig
from mlplatform.core.alerts import Window, aligned_window
from mlplatform.errors import DataError, WindowError


def iso(ts: float) -> str:
    """Unix seconds as ISO-8601 UTC to the second: ``2026-01-01T00:00:00Z``."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> float:
    """Unix seconds from ISO-8601 (``2026-01-01T10:00:00Z``, an offset, or no zone = UTC) or
    from a number of Unix seconds; :class:`DataError` for anything else."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise DataError(
            f"time {text!r}: use ISO-8601 UTC (e.g. 2026-01-01T10:00:00Z) or Unix seconds"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def trailing_window(now: float, length: float) -> Window:
    """``[end − length, end)`` with end = ⌊now⌋ + 1: the last ``length`` seconds, everything
    logged up to ``now`` included, on whole seconds (so its ISO times name it exactly)."""
    if not length > 0:
        raise WindowError(f"window length must be > 0 seconds, got {length}")
    end = float(math.floor(now) + 1)
    return Window(end - length, end)


def resolve_window(
    since: float | None, until: float | None, now: float, s: MonitorConfig, aligned: bool = True
) -> Window:
    """``[since, until)`` when both are given (a backfill); else the last aligned window
    (``aligned``) or the trailing one (see the module docstring)."""
    if since is not None and until is not None:
        return Window(since, until)
    if since is not None or until is not None:
        raise DataError("give both --since and --until, or neither (the default window)")
    if aligned:
        return aligned_window(now, s.window_seconds, s.window_lag_seconds)
    return trailing_window(now, s.window_seconds)
