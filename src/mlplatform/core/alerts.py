"""Alert logic without I/O: aligned monitoring windows, the cooldown that keeps a flapping
signal from starting a retraining storm, and the life cycle of an alert.

A window is ``[start, end)`` on a grid of ``length`` seconds, so every rerun of the monitor
for the same period names the same window, and (model, start, end) identifies at most one
alert. Life cycle::

    open ──claim──▶ claimed ──record_run──▶ run_started ──resolve──▶ resolved
                     │  ▲
                     └──┘ re-claim once the lease has expired (the claimer crashed)
    suppressed: a drifting window inside the cooldown, kept as evidence, never claimed

>>> w = aligned_window(now=7_250.0, length=3_600)
>>> (w.start, w.end)
(3600.0, 7200.0)
>>> cooldown_blocker(Window(7_200, 10_800), [(1, w)], cooldown=86_400)
1
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from mlplatform.errors import AlertTransitionError, WindowError

AlertStatus = Literal["open", "claimed", "run_started", "resolved", "suppressed", "failed"]
STATUSES: tuple[AlertStatus, ...] = (
    "open",
    "claimed",
    "run_started",
    "resolved",
    "suppressed",
    "failed",
)
#: Allowed moves; ``claimed → claimed`` is a re-claim after the lease expired.
TRANSITIONS: dict[AlertStatus, frozenset[AlertStatus]] = {
    "open": frozenset({"claimed"}),
    "claimed": frozenset({"claimed", "run_started", "failed"}),
    "run_started": frozenset({"resolved"}),
    "resolved": frozenset(),
    "suppressed": frozenset(),
    "failed": frozenset(),  # the run could not be started: the error is recorded
}


@dataclass(frozen=True, order=True)
class Window:
    """The period ``[start, end)`` in Unix seconds."""

    start: float
    end: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start) and math.isfinite(self.end) and self.end > self.start):
            raise WindowError(f"a window needs finite start < end, got [{self.start}, {self.end})")

    @property
    def length(self) -> float:
        return self.end - self.start

    def slug(self) -> str:
        """``20260101T000000Z-20260101T010000Z``: a file-name-safe label."""
        return f"{_stamp(self.start)}-{_stamp(self.end)}"


def _stamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y%m%dT%H%M%SZ")


def aligned_window(now: float, length: float, lag: float = 0.0) -> Window:
    """The last complete window of the grid that ended at or before ``now − lag``:
    end = ⌊(now − lag)/length⌋ · length, start = end − length."""
    if not length > 0:
        raise WindowError(f"window length must be > 0 seconds, got {length}")
    end = math.floor((now - lag) / length) * length
    return Window(float(end - length), float(end))


def cooldown_blocker(
    window: Window, fired: Iterable[tuple[int, Window]], cooldown: float
) -> int | None:
    """The id of a fired alert whose window ends less than ``cooldown`` seconds from this
    window's end (in event time, either side, so backfills obey it too), else None."""
    for alert_id, other in fired:
        if other != window and abs(window.end - other.end) < cooldown:
            return alert_id
    return None


def check_transition(current: AlertStatus, new: AlertStatus) -> None:
    """Raise :class:`AlertTransitionError` unless ``current → new`` is in :data:`TRANSITIONS`."""
    if new not in TRANSITIONS[current]:
        allowed = sorted(TRANSITIONS[current]) or "nothing (final)"
        raise AlertTransitionError(
            f"an alert in state {current!r} cannot become {new!r}: {allowed}"
        )


def can_claim(status: AlertStatus, lease_expires: float | None, now: float) -> bool:
    """Open alerts can be claimed; a claimed one again once its lease has expired."""
    if status == "open":
        return True
    return status == "claimed" and lease_expires is not None and lease_expires <= now
