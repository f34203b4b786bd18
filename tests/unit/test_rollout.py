"""Rollout decisions (core) and the controller's loop against a fake backend and clock."""

from __future__ import annotations

import doctest
import json
import warnings
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import ks_2samp

import mlplatform.core.rollout
from mlplatform.config import MonitorConfig, RolloutConfig
from mlplatform.core.rollout import VariantStats, decide, ks_statistic
from mlplatform.errors import DataError, TrafficError
from mlplatform.serving.metrics import VariantMetrics, stats_from_json
from mlplatform.serving.rollout import RolloutController

CFG = RolloutConfig(
    steps=(10, 50, 100),
    min_requests=100,
    max_step_seconds=60,
    max_error_rate=0.01,
    max_error_rate_increase=0.005,
    max_p95_latency_ratio=1.5,
    max_prediction_shift=0.3,
    max_ground_truth_error_ratio=1.2,
    min_labels=30,
    min_explain_fidelity=0.5,
)


def variant(seed: int = 0, **kw: Any) -> VariantStats:
    rng = np.random.default_rng(seed)
    base: dict[str, Any] = {
        "requests": 1000,
        "errors": 0,
        "p95_latency_ms": 10.0,
        "predictions": rng.normal(size=500),
        "ground_truth_error": 1.0,
        "explain_fidelity": 0.9,
    }
    return VariantStats(**(base | kw))


STABLE = variant(0)
CANARY = variant(1)


# -- KS statistic ---------------------------------------------------------------------------
def scipy_ks(a: np.ndarray, b: np.ndarray) -> float:
    with warnings.catch_warnings():  # its p-value warns on tiny samples; D is what we compare
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(ks_2samp(a, b).statistic)


@pytest.mark.parametrize(("n", "m", "shift"), [(50, 70, 0.0), (500, 300, 0.4), (1, 9, 1.0)])
def test_ks_equals_scipy_on_random_samples(n: int, m: int, shift: float) -> None:
    rng = np.random.default_rng(n + m)
    a, b = rng.normal(size=n), rng.normal(shift, 1.0, size=m)
    assert ks_statistic(a, b) == pytest.approx(scipy_ks(a, b), abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(-5, 5), min_size=1, max_size=40),
    st.lists(st.integers(-5, 5), min_size=1, max_size=40),
)
def test_ks_equals_scipy_with_ties(a: list[int], b: list[int]) -> None:
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert ks_statistic(x, y) == pytest.approx(scipy_ks(x, y), abs=1e-12)


def test_ks_rejects_empty_and_nan() -> None:
    with pytest.raises(DataError, match="non-empty"):
        ks_statistic(np.zeros(0), np.ones(3))
    with pytest.raises(DataError, match="finite"):
        ks_statistic(np.array([np.nan]), np.ones(3))


# -- decide -----------------------------------------------------------------------------------
def test_happy_path_advances_then_promotes() -> None:
    first = decide(STABLE, CANARY, CFG, 0, 5.0)
    assert first.action == "advance"
    assert all(c.passed for c in first.checks) and len(first.checks) == 6
    assert "step 1/3 (10%) passed" in first.reason
    assert decide(STABLE, CANARY, CFG, 1, 5.0).action == "advance"
    last = decide(STABLE, CANARY, CFG, 2, 5.0)
    assert last.action == "promote" and "step 3/3 (100%)" in last.reason


def test_waits_for_min_requests_then_judges_after_timeout() -> None:
    few = replace(CANARY, requests=30)
    waiting = decide(STABLE, few, CFG, 0, 10.0)
    assert waiting.action == "wait" and "30/100" in waiting.reason
    assert decide(STABLE, few, CFG, 0, 60.0).action == "advance"
    # cumulative stats, but only 5 canary requests in this step:
    assert decide(STABLE, CANARY, CFG, 1, 1.0, step_requests=5).action == "wait"


def test_no_canary_requests_after_timeout_rolls_back() -> None:
    none = replace(CANARY, requests=0, predictions=np.zeros(0))
    d = decide(STABLE, none, CFG, 0, 61.0)
    assert d.action == "rollback" and "no canary requests" in d.reason


@pytest.mark.parametrize(
    ("change", "failed"),
    [
        ({"errors": 20}, "canary_error_rate"),  # 2% > 1%
        ({"errors": 8}, "canary_error_rate_vs_stable"),  # 0.8% ≤ 1% but > 0% + 0.5%
        ({"p95_latency_ms": 16.0}, "p95_latency_ratio"),
        ({"predictions": np.random.default_rng(2).normal(1.5, 1, 500)}, "prediction_shift_ks"),
        ({"ground_truth_error": 1.3}, "ground_truth_error_ratio"),
        ({"explain_fidelity": 0.4}, "canary_explain_fidelity"),
    ],
)
def test_each_failing_check_rolls_back(change: dict[str, Any], failed: str) -> None:
    d = decide(STABLE, replace(CANARY, **change), CFG, 1, 5.0)
    assert d.action == "rollback"
    assert failed in [c.name for c in d.failed]
    assert failed in d.reason and "FAILED" in d.reason


def test_error_increase_is_relative_to_stable() -> None:
    stable = replace(STABLE, errors=6)  # 0.6%: the canary's 0.8% is within +0.5%
    assert decide(stable, replace(CANARY, errors=8), CFG, 0, 5.0).action == "advance"


def test_missing_inputs_are_skipped_and_named() -> None:
    canary = replace(CANARY, ground_truth_error=None, explain_fidelity=None)
    d = decide(replace(STABLE, p95_latency_ms=None), canary, CFG, 0, 5.0)
    assert d.action == "advance" and len(d.checks) == 3
    for name in ("p95_latency_ratio", "ground_truth_error_ratio", "canary_explain_fidelity"):
        assert name in d.reason


def test_disabled_checks_are_not_run() -> None:
    cfg = CFG.model_copy(update={"max_ground_truth_error_ratio": None})
    d = decide(STABLE, replace(CANARY, ground_truth_error=9.0), cfg, 0, 5.0)
    assert d.action == "advance"


# -- ground truth outranks the prediction shift --------------------------------------------
# Integer predictions, so the KS statistic is exact by hand: stable 0..99, canary 45..144.
# At t = 44, F_stable = 45/100 and F_canary = 0, and no t does better: KS = 0.45 > 0.3.
SHIFTED = np.arange(45.0, 145.0)


def labelled(stable_n: int, canary_n: int, canary_error: float = 0.8) -> tuple[Any, Any]:
    """Stable error 1.0 on ``stable_n`` labels, the shifted canary ``canary_error`` on
    ``canary_n``: the error ratio is ``canary_error`` / 1.0."""
    stable = replace(STABLE, predictions=np.arange(100.0), ground_truth_error=1.0)
    canary = replace(CANARY, predictions=SHIFTED, ground_truth_error=canary_error)
    return replace(stable, labelled=stable_n), replace(canary, labelled=canary_n)


@pytest.mark.parametrize(("step", "action"), [(0, "advance"), (2, "promote")])
def test_enough_labels_the_shift_is_reported_but_not_judged(step: int, action: str) -> None:
    stable, canary = labelled(40, 40)  # error ratio 0.8 ≤ 1.2
    d = decide(stable, canary, CFG, step, 5.0)
    assert d.action == action and d.failed == ()
    assert "prediction_shift_ks" not in [c.name for c in d.checks]
    (shift,) = d.unjudged
    assert shift.name == "prediction_shift_ks" and not shift.passed
    assert shift.value == pytest.approx(0.45, abs=1e-12)
    assert "prediction_shift_ks = 0.45 (limit <= 0.3, not judged" in d.reason
    assert "ground truth on 40 stable / 40 canary labelled predictions decides" in d.reason
    assert "ground_truth_error_ratio = 0.8 (needs <= 1.2): ok" in d.reason


@pytest.mark.parametrize(
    ("stable_n", "canary_n"),
    [(10, 10), (29, 29), (29, 40), (40, 29), (0, 1000)],  # both need min_labels = 30
)
def test_too_few_labels_the_shift_still_rolls_back(stable_n: int, canary_n: int) -> None:
    d = decide(*labelled(stable_n, canary_n), CFG, 0, 5.0)
    assert d.action == "rollback" and [c.name for c in d.failed] == ["prediction_shift_ks"]
    assert "prediction_shift_ks = 0.45 (needs <= 0.3): FAILED" in d.reason
    assert d.unjudged == () and "not judged" not in d.reason


def test_exactly_min_labels_is_enough() -> None:
    d = decide(*labelled(30, 30), CFG, 0, 5.0)
    assert d.action == "advance" and "30 stable / 30 canary" in d.reason


def test_enough_labels_a_worse_error_ratio_rolls_back() -> None:
    stable, canary = labelled(40, 40, canary_error=1.5)  # 1.5 / 1.0 > 1.2
    d = decide(stable, canary, CFG, 0, 5.0)
    assert d.action == "rollback" and [c.name for c in d.failed] == ["ground_truth_error_ratio"]
    assert "ground_truth_error_ratio = 1.5 (needs <= 1.2): FAILED" in d.reason
    assert "prediction_shift_ks = 0.45 (limit <= 0.3, not judged" in d.reason


def test_disabled_ground_truth_check_never_waives_the_shift() -> None:
    cfg = CFG.model_copy(update={"max_ground_truth_error_ratio": None})
    d = decide(*labelled(1000, 1000), cfg, 0, 5.0)
    assert d.action == "rollback" and [c.name for c in d.failed] == ["prediction_shift_ks"]
    assert "ground_truth_error_ratio" not in d.reason and "not judged" not in d.reason


def test_labels_counted_without_an_error_do_not_waive_the_shift() -> None:
    stable, canary = labelled(40, 40)
    d = decide(stable, replace(canary, ground_truth_error=None), CFG, 0, 5.0)
    assert d.action == "rollback" and [c.name for c in d.failed] == ["prediction_shift_ks"]


def test_min_labels_is_configurable() -> None:
    cfg = CFG.model_copy(update={"min_labels": 50})
    assert decide(*labelled(40, 40), cfg, 0, 5.0).action == "rollback"
    assert decide(*labelled(50, 50), cfg, 0, 5.0).action == "advance"
    with pytest.raises(ValueError, match="min_labels"):
        RolloutConfig(min_labels=0)
    assert RolloutConfig().min_labels == MonitorConfig().min_labels == 30  # one bar for labels


def test_labelled_count_travels_from_the_stats_json() -> None:
    live = VariantMetrics(reservoir=10)
    live.observe(3.0, False, [1.0, 2.0, 4.0])
    live.observe_labels([0.5, 1.5, 1.0])  # a request of three rows, all labelled
    stats = stats_from_json(json.loads(json.dumps(live.to_json())))
    assert (stats.labelled, stats.ground_truth_error) == (3, 1.0)
    assert stats_from_json({"requests": 5}).labelled == 0  # an older router or sink


# -- latency slack: a ratio over its limit at a few ms is noise ------------------------------
@pytest.mark.parametrize(
    ("stable_p95", "canary_p95", "slack", "action"),
    [
        (2.0, 3.4, 5.0, "advance"),  # 1.7× but only 1.4 ms more: not judged
        (2.0, 7.0, 5.0, "advance"),  # 3.5× and exactly the 5 ms slack: still within it
        (2.0, 7.5, 5.0, "rollback"),  # 3.75× and 5.5 ms more
        (10.0, 16.0, 5.0, "rollback"),  # 1.6× and 6 ms more
        (2.0, 3.4, 0.0, "rollback"),  # no slack: the ratio alone decides, as before
    ],
)
def test_latency_ratio_over_its_limit_fails_only_beyond_the_slack(
    stable_p95: float, canary_p95: float, slack: float, action: str
) -> None:
    cfg = CFG.model_copy(update={"p95_latency_slack_ms": slack})
    stable = replace(STABLE, p95_latency_ms=stable_p95)
    canary = replace(STABLE, p95_latency_ms=canary_p95)  # the same model, only slower
    d = decide(stable, canary, cfg, 0, 5.0)
    assert d.action == action, d.reason
    judged = {c.name for c in d.checks}
    if action == "advance":
        assert "p95_latency_ratio" not in judged
        (latency,) = d.unjudged
        assert latency.name == "p95_latency_ratio" and not latency.passed
        shown = f"{canary_p95 - stable_p95:.2g} ms above stable's, within the {slack:g} ms slack"
        assert shown in d.reason, d.reason
    else:
        assert [c.name for c in d.failed] == ["p95_latency_ratio"], d.reason


def test_a_latency_ratio_within_its_limit_is_judged_as_always() -> None:
    d = decide(STABLE, replace(STABLE, p95_latency_ms=12.0), CFG, 0, 5.0)
    (latency,) = [c for c in d.checks if c.name == "p95_latency_ratio"]
    assert latency.passed and latency.value == pytest.approx(1.2)
    assert d.unjudged == ()


def test_module_example() -> None:
    assert doctest.testmod(mlplatform.core.rollout).failed == 0


def test_step_index_out_of_range() -> None:
    with pytest.raises(DataError, match="step_index"):
        decide(STABLE, CANARY, CFG, 3, 0.0)


# -- controller -------------------------------------------------------------------------------
@dataclass
class FakeBackend:
    """Canary requests grow by ``rate`` per stats() call; errors by ``error_rate`` of them."""

    rate: int = 60
    error_rate: float = 0.0
    calls: list[str] = field(default_factory=list)
    served: int = 0
    canary_version: str = "7"

    def serves(self, version: str) -> bool:
        return version == self.canary_version

    def set_canary_percent(self, percent: int) -> None:
        self.calls.append(f"percent {percent}")

    def stats(self) -> tuple[VariantStats, VariantStats]:
        self.served += self.rate
        canary = replace(CANARY, requests=self.served, errors=int(self.served * self.error_rate))
        return STABLE, canary

    def promote(self) -> None:
        self.calls.append("promote")

    def rollback(self) -> None:
        self.calls.append("rollback")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def controller(backend: Any, clock: FakeClock, lines: list[str]) -> RolloutController:
    cfg = CFG.model_copy(update={"min_explain_fidelity": None})
    return RolloutController(
        backend, cfg, None, "m", clock=clock, sleep=clock.sleep, progress=lines.append
    )


def test_controller_steps_and_promotes() -> None:
    backend, clock, lines = FakeBackend(), FakeClock(), []
    result = controller(backend, clock, lines).run()
    assert result.outcome == "promoted"
    assert backend.calls == ["percent 10", "percent 50", "percent 100", "promote"]
    acts = [(i, d.action) for i, d in result.decisions if d.action != "wait"]
    assert acts == [(0, "advance"), (1, "advance"), (2, "promote")]
    assert any("canary at 50%" in line for line in lines)


def test_controller_rolls_back_a_failing_canary() -> None:
    backend = FakeBackend(error_rate=0.5)
    result = controller(backend, FakeClock(), []).run()
    assert result.outcome == "rolled_back" and "canary_error_rate" in result.reason
    assert backend.calls == ["percent 10", "rollback"]


def test_controller_times_out_without_canary_traffic() -> None:
    backend, clock = FakeBackend(rate=0), FakeClock()
    result = controller(backend, clock, []).run()
    assert result.outcome == "rolled_back" and "no canary requests" in result.reason
    assert clock.now >= CFG.max_step_seconds


def test_controller_rolls_traffic_back_on_an_unexpected_error() -> None:
    class Broken(FakeBackend):
        def stats(self) -> tuple[VariantStats, VariantStats]:
            raise RuntimeError("router gone")

    backend = Broken()
    with pytest.raises(RuntimeError, match="router gone"):
        controller(backend, FakeClock(), []).run()
    assert backend.calls[-1] == "rollback"


@dataclass
class FakeRegistry:
    """The part of :class:`Registry` the controller uses, recording every call."""

    calls: list[tuple[Any, ...]] = field(default_factory=list)

    @property
    def client(self) -> FakeRegistry:
        return self

    def by_alias(self, name: str, alias: str) -> Any:
        from mlplatform.registry.mlflow_registry import VersionInfo

        return VersionInfo(name, "7", "run-7", (alias,), {}, "")

    def run_metrics(self, run_id: str) -> dict[str, float]:
        return {"lime_fidelity_r2_mean": 0.3}

    def set_alias(self, *args: Any) -> None:
        self.calls.append(("set_alias", *args))

    def delete_alias(self, *args: Any) -> None:
        self.calls.append(("delete_alias", *args))

    def set_model_version_tag(self, *args: Any) -> None:
        self.calls.append(("tag", *args))


def test_controller_records_a_rollback_in_the_registry() -> None:
    """The challenger's LIME fidelity (0.3 < 0.5) fails the explanation check."""
    reg, clock = FakeRegistry(), FakeClock()
    ctl = RolloutController(
        FakeBackend(), CFG, reg, "m", clock=clock, sleep=clock.sleep, progress=lambda s: None
    )  # type: ignore[arg-type]
    result = ctl.run()
    assert result.outcome == "rolled_back" and result.version == "7"
    assert "canary_explain_fidelity" in result.reason
    tags = {c[3]: c[4] for c in reg.calls if c[0] == "tag"}
    assert set(tags) == {"rollback.reason", "rollback.at", "rollback.by", "rollout.state"}
    assert "canary_explain_fidelity" in tags["rollback.reason"]
    assert json.loads(tags["rollout.state"])["outcome"] == "rolled_back"
    assert ("delete_alias", "m", "challenger") in reg.calls


def test_controller_moves_no_traffic_when_the_canary_serves_another_version() -> None:
    reg, backend = FakeRegistry(), FakeBackend(canary_version="6")
    ctl = RolloutController(backend, CFG, reg, "m", progress=lambda s: None)  # type: ignore[arg-type]
    with pytest.raises(TrafficError, match="does not serve the challenger v7"):
        ctl.run()
    assert backend.calls == [] and reg.calls == []
