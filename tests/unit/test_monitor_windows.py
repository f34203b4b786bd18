"""The monitor's windows: the trailing default (`mlplatform monitor`), the aligned one (the
CronJob, `--aligned`), and times read and printed as ISO-8601 UTC."""

from __future__ import annotations

import pytest

from mlplatform.config import MonitorConfig
from mlplatform.core.alerts import Window
from mlplatform.errors import DataError
from mlplatform.monitoring.windows import iso, parse_time, resolve_window, trailing_window

NEW_YEAR = 1_767_225_600.0  # 2026-01-01T00:00:00Z (date -u -d 2026-01-01 +%s)
S = MonitorConfig(window_seconds=3600, window_lag_seconds=120)


def test_times_print_and_read_as_iso_utc() -> None:
    assert iso(NEW_YEAR) == "2026-01-01T00:00:00Z"
    assert iso(NEW_YEAR + 3661.9) == "2026-01-01T01:01:01Z"  # to the second
    for text in (
        "2026-01-01T00:00:00Z",
        "2026-01-01T07:00:00+07:00",  # an offset
        "2026-01-01T00:00:00",  # no zone: UTC, not the machine's zone
        "2026-01-01 00:00",
        "1767225600",  # Unix seconds still work
    ):
        assert parse_time(text) == NEW_YEAR, text
    with pytest.raises(DataError, match="ISO-8601"):
        parse_time("yesterday")


def test_trailing_window_holds_everything_logged_up_to_now() -> None:
    now = NEW_YEAR + 1234.25
    w = trailing_window(now, 600)
    assert w.end - w.start == 600
    assert w.start <= now - 599 and now < w.end <= now + 1  # the current second is inside
    assert w.end == NEW_YEAR + 1235  # whole seconds
    # what `monitor` prints, given back as --since/--until, names the same window (and alert)
    assert Window(parse_time(iso(w.start)), parse_time(iso(w.end))) == w
    on_the_second = trailing_window(NEW_YEAR, 600)
    assert on_the_second.start < NEW_YEAR < on_the_second.end


def test_default_window_is_trailing_and_aligned_is_the_cronjobs() -> None:
    now = NEW_YEAR + 2 * 3600 + 300  # 02:05:00, lag 120 s: 02:03 → the hour 01:00-02:00
    assert resolve_window(None, None, now, S, aligned=False) == trailing_window(now, 3600)
    aligned = resolve_window(None, None, now, S, aligned=True)
    assert aligned == Window(NEW_YEAR + 3600, NEW_YEAR + 7200)
    later = resolve_window(None, None, now + 1700, S, aligned=True)  # the next schedule
    assert later == aligned  # same window: the same alert key
    early = resolve_window(None, None, NEW_YEAR + 7200 + 100, S, aligned=True)  # 02:01:40
    assert early == Window(NEW_YEAR, NEW_YEAR + 3600)  # the lag: 01:59:40 → 00:00-01:00
    backfill = resolve_window(NEW_YEAR, NEW_YEAR + 60, now, S, aligned=True)
    assert backfill == Window(NEW_YEAR, NEW_YEAR + 60)
    with pytest.raises(DataError, match="both"):
        resolve_window(NEW_YEAR, None, now, S, aligned=False)
