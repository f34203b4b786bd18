"""`mlplatform rollout` waits for a canary that serves the challenger, and says what to run
when none comes (:func:`mlplatform.serving.rollout_watch.await_canary`)."""

from __future__ import annotations

import pytest

from mlplatform.errors import TrafficError, UpstreamError
from mlplatform.serving.rollout_watch import await_canary

HINT = "is `mlplatform serve --config c.yaml` running?"


class Canary:
    """Serves ``version`` from the ``ready_at``-th check on (never when None)."""

    def __init__(self, ready_at: int | None, down: bool = False) -> None:
        self.ready_at, self.down, self.checks = ready_at, down, 0

    def serves(self, version: str) -> bool:
        self.checks += 1
        if self.down:
            raise UpstreamError("router http://127.0.0.1:8090 unreachable: refused")
        return self.ready_at is not None and self.checks >= self.ready_at


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float) -> None:
        self.now += seconds


def wait(canary: Canary, clock: Clock, said: list[str], timeout: float = 10) -> None:
    await_canary(canary, "7", timeout, HINT, said.append, clock, clock.wait)  # type: ignore[arg-type]


def test_returns_once_the_canary_serves_the_challenger_saying_it_waits_once() -> None:
    canary, clock, said = Canary(ready_at=4), Clock(), []
    wait(canary, clock, said)
    assert canary.checks == 4 and clock.now == 3.0
    assert said == ["rollout: waiting up to 10 s for a canary serving v7 ..."]


def test_a_canary_already_serving_it_is_not_waited_for() -> None:
    canary, clock, said = Canary(ready_at=1), Clock(), []
    wait(canary, clock, said)
    assert (canary.checks, clock.now, said) == (1, 0.0, [])


def test_no_canary_in_time_is_one_line_saying_what_to_run() -> None:
    canary, clock = Canary(ready_at=None), Clock()
    with pytest.raises(TrafficError) as err:
        wait(canary, clock, [], timeout=5)
    assert clock.now == 5.0
    assert str(err.value) == f"the canary does not serve the challenger v7 after 5 s: {HINT}"


def test_an_unreachable_router_says_what_to_run_at_once() -> None:
    canary, clock = Canary(ready_at=None, down=True), Clock()
    with pytest.raises(UpstreamError) as err:
        wait(canary, clock, [])
    assert clock.now == 0.0 and str(err.value).endswith(f"refused: {HINT}")
