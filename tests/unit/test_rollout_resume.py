"""The rollout controller stops in order and resumes (issue 13, crash safety): a stop request
leaves the traffic at the step's split and records the step in the registry; a new
controller resumes there; a rollback is recorded before traffic moves back, and one recorded
but not finished is finished, never stepped up again. The registry here is an in-memory
model of the tags and aliases the controller reads and writes, sharing one call log with the
traffic backend so the order of the two is visible."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from mlplatform.config import RolloutConfig
from mlplatform.core.rollout import VariantStats
from mlplatform.registry.mlflow_registry import VersionInfo
from mlplatform.serving.rollout import RolloutController, RolloutStopped
from mlplatform.serving.rollout_state import STATE_TAG

CFG = RolloutConfig(steps=(10, 50, 100), min_requests=100, max_step_seconds=60)
OK = VariantStats(requests=0, errors=0, p95_latency_ms=10.0)


@dataclass
class World:
    """Traffic backend and registry in one: every call lands in ``log`` in order."""

    log: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)  # of version 7
    aliases: dict[str, str] = field(default_factory=lambda: {"champion": "6", "challenger": "7"})
    served: int = 0
    rate: int = 30
    error_share: float = 0.0
    stats_calls: int = 0
    on_stats: Any = None

    # -- backend --
    def serves(self, version: str) -> bool:
        return version == "7"

    def set_canary_percent(self, percent: int) -> None:
        self.log.append(f"percent {percent}")

    def stats(self) -> tuple[VariantStats, VariantStats]:
        self.stats_calls += 1
        if self.on_stats is not None:
            self.on_stats(self)
        self.served += self.rate
        canary = replace(OK, requests=self.served, errors=int(self.served * self.error_share))
        return replace(OK, requests=10_000), canary

    def promote(self) -> None:
        self.log.append("promote")

    def rollback(self) -> None:
        self.log.append("traffic back")

    # -- registry (Registry and its MLflow client) --
    @property
    def client(self) -> World:
        return self

    def by_alias(self, name: str, alias: str) -> VersionInfo | None:
        version = self.aliases.get(alias)
        if version is None:
            return None
        tags = dict(self.tags) if version == "7" else {}
        return VersionInfo(name, version, f"run-{version}", (alias,), tags, "")

    def run_metrics(self, run_id: str) -> dict[str, float]:
        return {}

    def set_alias(self, name: str, alias: str, version: str, reason: str) -> None:
        self.aliases[alias] = version
        self.log.append(f"alias {alias} -> {version}")

    def delete_alias(self, name: str, alias: str) -> None:
        self.aliases.pop(alias, None)
        self.log.append(f"drop {alias}")

    def set_model_version_tag(self, name: str, version: str, key: str, value: Any) -> None:
        self.tags[key] = str(value)
        if key != STATE_TAG:
            self.log.append(f"tag {key}")

    def state(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.tags[STATE_TAG])
        return doc


class Clock:
    """Monotonic and wall clock in one, stepped by the controller's sleeps."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def controller(world: World, clock: Clock) -> RolloutController:
    return RolloutController(
        world, CFG, world, "m", clock=clock, wall=clock, sleep=clock.sleep, progress=lambda s: None
    )  # type: ignore[arg-type]


def stop_at_step(index: int) -> Any:
    """``on_stats`` that asks the controller to stop once it polls step ``index``."""

    def hook(world: World) -> None:
        if f"percent {CFG.steps[index]}" in world.log:
            ctl.stopping.set()

    return hook


ctl: RolloutController


def test_a_stop_mid_step_leaves_traffic_and_records_the_step() -> None:
    global ctl
    world, clock = World(on_stats=stop_at_step(1)), Clock()
    ctl = controller(world, clock)
    with pytest.raises(RolloutStopped, match="at step 2"):
        ctl.run()
    assert world.log == ["percent 10", "percent 50"]  # no rollback, no promote
    state = world.state()
    assert state["version"] == "7" and state["step"] == 1 and state["outcome"] is None
    assert state["started_at"] == 1000.0 and state["step_started_at"] > state["started_at"]
    assert "canary requests" in state["last_decision"]  # what it was waiting for


def test_a_new_controller_resumes_at_the_recorded_step() -> None:
    global ctl
    world, clock = World(on_stats=stop_at_step(1)), Clock()
    ctl = controller(world, clock)
    with pytest.raises(RolloutStopped):
        ctl.run()
    world.log.clear()
    world.on_stats = None
    world.served = 0  # the new controller's statistics start afresh
    ctl = controller(world, clock)
    result = ctl.run()
    assert result.outcome == "promoted"
    assert world.log == [
        "percent 50",  # resumed: not back to 10 %
        "percent 100",
        "promote",
        "alias champion -> 7",
        "drop challenger",
    ]
    assert world.state()["outcome"] == "promoted"


def test_the_resumed_step_counts_its_time_from_the_recorded_start() -> None:
    """Down for 50 s at 50 % with no canary traffic afterwards: the step's 60 s run out
    about 10 s after the restart, not 60 s after it."""
    global ctl
    world, clock = World(on_stats=stop_at_step(1)), Clock()
    ctl = controller(world, clock)
    with pytest.raises(RolloutStopped):
        ctl.run()
    step_started = world.state()["step_started_at"]
    world.on_stats, world.rate = None, 0
    clock.now = step_started + 50
    ctl = controller(world, clock)
    result = ctl.run()
    assert result.outcome == "rolled_back" and "no canary requests" in result.reason
    assert step_started + 60 <= clock.now <= step_started + 60 + 2 * ctl.poll_seconds


def test_a_rollback_is_recorded_before_the_traffic_moves_back() -> None:
    world = World(error_share=0.5)
    result = controller(world, Clock()).run()
    assert result.outcome == "rolled_back"
    back = world.log.index("traffic back")
    assert world.log.index("tag rollback.at") < back < world.log.index("drop challenger")
    assert world.state()["outcome"] == "rolled_back"


def test_a_recorded_but_unfinished_rollback_is_finished_not_stepped_up() -> None:
    """A controller died after marking v7 rolled back, before moving its traffic back."""
    world = World(tags={"rollback.at": "2026-12-07T03:00:00Z", "rollback.reason": "errors"})
    result = controller(world, Clock()).run()
    assert result.outcome == "rolled_back" and result.reason == "errors"
    assert world.log == ["traffic back", "drop challenger"]  # no percent > 0 ever set
    assert "challenger" not in world.aliases


def test_a_state_for_another_version_or_already_finished_is_not_resumed() -> None:
    for state in (
        {"version": "5", "step": 2, "step_started_at": 1.0, "started_at": 1.0},
        {"version": "7", "step": 2, "step_started_at": 1.0, "started_at": 1.0, "outcome": "x"},
        {"version": "7", "step": 9, "step_started_at": 1.0, "started_at": 1.0},
    ):
        world = World(tags={STATE_TAG: json.dumps(state)})
        controller(world, Clock()).run()
        assert world.log[0] == "percent 10", state
