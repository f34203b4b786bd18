"""What one ``:explain`` request may cost: rows, explanations in flight, time.

Settings from the config's serve section, each checked before or while the work runs:

* ``serve.explain_max_rows``: more rows in one request → 413
  (:class:`~mlplatform.errors.TooManyRowsToExplainError`), checked before anything is done;
* ``serve.explain_max_concurrent``: explanations computed at once in this process; one more
  is refused at once, not queued → 429 with ``Retry-After``
  (:class:`~mlplatform.errors.ExplainerBusyError`);
* ``serve.explain_deadline_seconds``: a :class:`Budget` per request; the explainer's
  ``predict_fn`` checks it before every model call, so an explanation past its deadline (or
  whose client went away) stops at its next prediction → 503
  (:class:`~mlplatform.errors.ExplainDeadlineError`).

>>> gate = Gate(limit=1, seconds=5.0)
>>> budget = gate.enter()
>>> gate.enter()  # doctest: +ELLIPSIS
Traceback (most recent call last):
mlplatform.errors.ExplainerBusyError: the explainer is computing 1 explanation(s) already ...
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any

from mlplatform.errors import ExplainDeadlineError, ExplainerBusyError, TooManyRowsToExplainError


@dataclass
class Budget:
    """One request's allowance: its deadline (``time.monotonic``) and whether it still has a
    caller (``cancelled`` once the client has gone); ``in_process`` is set by the version
    check at the start of the work."""

    deadline: float
    seconds: float
    in_process: bool = False
    cancelled: bool = False

    def remaining(self) -> float:
        """Seconds left, or ExplainDeadlineError when none are (or the caller is gone)."""
        left = self.deadline - time.monotonic()
        if self.cancelled:
            raise ExplainDeadlineError("the explanation was cancelled: its client went away")
        if left <= 0:
            raise ExplainDeadlineError(
                f"the explanation was stopped at its deadline of {self.seconds:g} s "
                "(serve.explain_deadline_seconds): explain fewer rows per request, or ask for "
                '"explainers": ["lime"] only'
            )
        return left


class Gate:
    """At most ``limit`` explanations at once; each gets a :class:`Budget` of ``seconds``."""

    def __init__(self, limit: int, seconds: float) -> None:
        self.limit, self.seconds = limit, seconds
        self._lock = threading.Lock()
        self._open: dict[int, Budget] = {}

    def enter(self) -> Budget:
        """One of the ``limit`` slots (give it back with :meth:`leave` when the work has
        ended), or ExplainerBusyError (429) with the seconds until the earliest one is free
        for sure: its explanation has ended or been stopped at its deadline."""
        now = time.monotonic()
        with self._lock:
            if len(self._open) >= self.limit:
                first = min(b.deadline for b in self._open.values())
                raise ExplainerBusyError(
                    f"the explainer is computing {self.limit} explanation(s) already "
                    "(serve.explain_max_concurrent): retry later",
                    retry_after=max(1, math.ceil(first - now)),
                )
            budget = Budget(now + self.seconds, self.seconds)
            self._open[id(budget)] = budget
        return budget

    def leave(self, budget: Budget) -> None:
        with self._lock:
            self._open.pop(id(budget), None)


def check_row_count(payload: Any, limit: int) -> None:
    """TooManyRowsToExplainError (413) for a v1 body with more than ``limit`` instances (the
    body's other problems are left to :func:`mlplatform.serving.inputs.v1_frame`).

    >>> check_row_count({"instances": [[1], [2]]}, limit=1)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    mlplatform.errors.TooManyRowsToExplainError: 2 rows exceed the explainer's limit of 1 ...
    """
    rows = payload.get("instances") if isinstance(payload, dict) else None
    if isinstance(rows, list) and len(rows) > limit:
        raise TooManyRowsToExplainError(
            f"{len(rows)} rows exceed the explainer's limit of {limit} per request "
            "(serve.explain_max_rows): send them in several requests"
        )
