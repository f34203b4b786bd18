"""Alert windows, cooldown and the retrain life cycle; the store (SQLite and PostgreSQL) is
idempotent, claims are atomic across threads and processes, a crashed claimer's lease expires
and a heartbeat keeps a live claimer's lease."""

from __future__ import annotations

import doctest
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.race import READY, run_together
from tests.support.services import store_backends, store_database

import mlplatform.core.alerts
from mlplatform.core.alerts import (
    Window,
    aligned_window,
    can_claim,
    check_transition,
    cooldown_blocker,
)
from mlplatform.errors import (
    AlertLeaseLostError,
    AlertNotFoundError,
    AlertTransitionError,
    WindowError,
)
from mlplatform.monitoring.alert_store import AlertRecord, AlertStore

HOUR, DAY = 3600.0, 86_400.0
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def test_module_example() -> None:
    assert doctest.testmod(mlplatform.core.alerts).failed == 0


# -- pure logic -----------------------------------------------------------------------------------
def test_aligned_window_is_the_same_for_every_rerun_in_the_hour() -> None:
    windows = {aligned_window(T0 + HOUR + s, HOUR) for s in (0, 1, 1799, 3599.9)}
    assert windows == {Window(T0, T0 + HOUR)}
    assert aligned_window(T0 + 2 * HOUR + 5, HOUR, lag=HOUR) == Window(T0, T0 + HOUR)
    assert Window(T0, T0 + HOUR).slug() == "20260101T000000Z-20260101T010000Z"


@pytest.mark.parametrize(("start", "end"), [(5.0, 5.0), (6.0, 5.0), (0.0, float("inf"))])
def test_window_must_be_ordered_and_finite(start: float, end: float) -> None:
    with pytest.raises(WindowError):
        Window(start, end)


def test_aligned_window_needs_positive_length() -> None:
    with pytest.raises(WindowError, match="length"):
        aligned_window(T0, 0)


def test_cooldown_blocker() -> None:
    w = Window(T0 + 5 * HOUR, T0 + 6 * HOUR)
    fired = [(1, Window(T0, T0 + HOUR))]
    assert cooldown_blocker(w, fired, DAY) == 1
    assert cooldown_blocker(w, fired, 5 * HOUR) is None  # exactly cooldown apart: allowed
    assert cooldown_blocker(w, fired, 0) is None
    assert cooldown_blocker(Window(T0, T0 + HOUR), fired, DAY) is None  # itself
    backfill = Window(T0 - 3 * HOUR, T0 - 2 * HOUR)
    assert cooldown_blocker(backfill, fired, DAY) == 1  # earlier windows obey it too


def test_transitions() -> None:
    check_transition("open", "claimed")
    check_transition("claimed", "run_started")
    check_transition("run_started", "resolved")
    for current, new in [("open", "run_started"), ("suppressed", "claimed"), ("resolved", "open")]:
        with pytest.raises(AlertTransitionError):
            check_transition(current, new)  # type: ignore[arg-type]
    assert can_claim("open", None, 0.0)
    assert not can_claim("claimed", 10.0, 9.9) and can_claim("claimed", 10.0, 10.0)
    assert not can_claim("suppressed", None, 0.0) and not can_claim("run_started", 0.0, 1.0)


# -- the store ------------------------------------------------------------------------------------
@pytest.fixture(params=store_backends())
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AlertStore]:
    with (
        store_database(request.param, tmp_path, "alerts.db") as url,
        AlertStore(url, lease_seconds=600) as s,
    ):
        yield s


def _record(
    store: AlertStore, hour: int, cooldown: float = DAY, now: float = T0
) -> tuple[AlertRecord, bool]:
    window = Window(T0 + hour * HOUR, T0 + (hour + 1) * HOUR)
    evidence = {"features": {"area_m2": {"statistic": 0.3, "p_value": 1e-9}}, "hour": hour}
    out = store.record("house-price", window, ("data_drift",), evidence, ["3"], now, cooldown)
    return out.alert, out.created


def test_rerun_of_a_window_writes_one_alert(store: AlertStore) -> None:
    first, created = _record(store, 0)
    again, created_again = _record(store, 0, now=T0 + 999)
    assert created and not created_again
    assert again == first and first.status == "open"
    assert first.evidence["features"]["area_m2"]["p_value"] == 1e-9
    assert first.model_versions == ("3",) and first.reasons == ("data_drift",)
    assert len(store.alerts()) == 1


def test_concurrent_monitors_on_one_window_write_one_alert(store: AlertStore) -> None:
    results: list[bool] = []
    threads = [
        threading.Thread(target=lambda: results.append(_record(store, 2)[1])) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]
    assert len(store.alerts()) == 1


def test_cooldown_suppresses_but_keeps_evidence(store: AlertStore) -> None:
    fired, _ = _record(store, 0)
    flaps = [_record(store, h)[0] for h in (1, 5, 23)]
    assert [a.status for a in flaps] == ["suppressed"] * 3
    assert all(a.suppressed_by == fired.alert_id and a.evidence["hour"] for a in flaps)
    later, _ = _record(store, 24)  # a full day after the fired one (suppressed ones don't count)
    assert later.status == "open"
    assert [a.alert_id for a in store.claimable(T0)] == [fired.alert_id, later.alert_id]
    assert len(store.alerts(model="house-price", status="suppressed")) == 3


def test_other_models_have_their_own_cooldown(store: AlertStore) -> None:
    _record(store, 0)
    w = Window(T0, T0 + HOUR)
    other = store.record("credit-risk", w, ("concept_drift",), {}, ["1"], T0, DAY)
    assert other.alert.status == "open"


def test_retrain_life_cycle(store: AlertStore) -> None:
    alert, _ = _record(store, 0)
    aid = alert.alert_id
    assert store.claim_for_retrain(aid, "trigger-a", now=T0)
    assert not store.claim_for_retrain(aid, "trigger-b", now=T0 + 1)
    store.record_run(aid, "run-17", owner="trigger-a", now=T0 + 2)
    store.record_run(aid, "run-17", owner="trigger-a", now=T0 + 3)  # a retry is a no-op
    assert [a.run_id for a in store.runs_pending()] == ["run-17"]
    assert not store.claim_for_retrain(aid, "trigger-b", now=T0 + 10_000)  # run started
    store.resolve(aid, "4", now=T0 + 50)
    done = store.get(aid)
    assert (done.status, done.resolved_version, done.claims) == ("resolved", "4", 1)
    assert store.runs_pending() == [] and store.claimable(T0 + 10_000) == []


def test_crashed_claimer_lease_expires(store: AlertStore) -> None:
    aid = _record(store, 0)[0].alert_id
    assert store.claim_for_retrain(aid, "crashed", now=T0)
    assert store.claimable(T0 + 599) == []
    assert not store.claim_for_retrain(aid, "trigger-b", now=T0 + 599)
    assert [a.alert_id for a in store.claimable(T0 + 600)] == [aid]
    assert store.claim_for_retrain(aid, "trigger-b", now=T0 + 600)
    with pytest.raises(AlertLeaseLostError, match="trigger-b"):
        store.record_run(aid, "run-zombie", owner="crashed")
    store.record_run(aid, "run-1", owner="trigger-b")
    got = store.get(aid)
    assert (got.status, got.run_id, got.claim_owner, got.claims) == (
        "run_started",
        "run-1",
        "trigger-b",
        2,
    )


def test_invalid_moves(store: AlertStore) -> None:
    aid = _record(store, 0)[0].alert_id
    suppressed = _record(store, 1)[0].alert_id
    with pytest.raises(AlertTransitionError):
        store.record_run(aid, "run-1")  # not claimed
    with pytest.raises(AlertTransitionError):
        store.resolve(aid, "4")
    assert not store.claim_for_retrain(suppressed, "trigger")
    with pytest.raises(AlertNotFoundError):
        store.claim_for_retrain(9999, "trigger")


def test_claim_is_atomic_across_threads(store: AlertStore) -> None:
    aid = _record(store, 0)[0].alert_id
    barrier = threading.Barrier(8)
    wins: list[str] = []

    def claim(owner: str) -> None:
        barrier.wait()
        if store.claim_for_retrain(aid, owner):
            wins.append(owner)

    threads = [threading.Thread(target=claim, args=(f"t{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and store.get(aid).claim_owner == wins[0]


CLAIM = f"""
import sys
from mlplatform.monitoring.alert_store import AlertStore
store = AlertStore(sys.argv[1])
{READY}
print(store.claim_for_retrain(int(sys.argv[2]), sys.argv[3]))
"""


def test_claim_is_atomic_across_processes(store: AlertStore) -> None:
    aid = _record(store, 0)[0].alert_id
    outputs = run_together(  # every process claims at the same moment
        [[sys.executable, "-c", CLAIM, store.url, str(aid), f"p{i}"] for i in range(4)]
    )
    assert sorted(outputs) == ["False", "False", "False", "True"]
    assert store.get(aid).claim_owner == f"p{outputs.index('True')}"


RECORD = f"""
import sys, time
from mlplatform.core.alerts import Window
from mlplatform.monitoring.alert_store import AlertStore
store = AlertStore(sys.argv[1])
{READY}
window = Window(1_767_225_600.0, 1_767_229_200.0)
out = store.record("house-price", window, ("data_drift",), {{}}, ["3"], time.time(), 86_400.0)
print(out.created, out.alert.alert_id)
"""


def test_racing_monitor_processes_write_one_alert(store: AlertStore) -> None:
    outputs = [out.split() for out in run_together([[sys.executable, "-c", RECORD, store.url]] * 4)]
    assert sorted(created for created, _ in outputs) == ["False", "False", "False", "True"]
    assert len({alert_id for _, alert_id in outputs}) == 1 and len(store.alerts()) == 1


def test_heartbeat_extends_the_lease_of_its_owner_only(store: AlertStore) -> None:
    aid = _record(store, 0)[0].alert_id
    assert store.claim_for_retrain(aid, "starter", now=T0)
    assert store.heartbeat(aid, "starter", now=T0 + 500)
    assert store.get(aid).lease_expires == T0 + 1100
    assert store.heartbeat(aid, "starter", now=T0 - 5000)  # never shortens the lease
    assert store.get(aid).lease_expires == T0 + 1100
    assert not store.claim_for_retrain(aid, "other", now=T0 + 700)  # would have expired
    assert not store.heartbeat(aid, "other", now=T0 + 700)
    assert store.claim_for_retrain(aid, "other", now=T0 + 1100)
    assert not store.heartbeat(aid, "starter", now=T0 + 1101)  # lost: do not start the run
    store.record_run(aid, "run-1", owner="other")
    assert not store.heartbeat(aid, "other")  # run started: nothing left to keep


def test_leases_run_on_the_database_clock(store: AlertStore) -> None:
    aid = _record(store, 0)[0].alert_id
    before = time.time()
    assert store.claim_for_retrain(aid, "a")  # no `now`: the database's clock
    got = store.get(aid)
    assert got.claimed_at is not None and got.lease_expires is not None
    assert before - 5 < got.claimed_at < time.time() + 5
    assert got.lease_expires == pytest.approx(got.claimed_at + 600)
    assert store.claimable() == [] and not store.claim_for_retrain(aid, "b")
    short = AlertStore(store.url, lease_seconds=0.3)
    assert short.heartbeat(aid, "a")  # never shortens: still ~600 s
    assert not short.claim_for_retrain(aid, "b")
    other = _record(store, 30)[0].alert_id
    assert short.claim_for_retrain(other, "a")
    claimed = short.get(other)
    assert claimed.lease_expires == pytest.approx(claimed.claimed_at + 0.3)  # type: ignore[operator]
    deadline = time.monotonic() + 10  # until the database's clock passes the short lease
    while [a.alert_id for a in short.claimable()] != [other]:
        assert time.monotonic() < deadline, "the 0.3 s lease never expired"
        time.sleep(0.02)
    assert short.claim_for_retrain(other, "b") and short.get(other).claims == 2
    short.close()
