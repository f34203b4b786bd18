"""The rollout controller: step the canary through ``rollout.steps``, judge it with
:func:`mlplatform.core.rollout.decide`, then promote or roll back, in traffic and in MLflow.

    python -m mlplatform.serving.rollout --config configs/house-price.yaml \\
        --router-url http://127.0.0.1:8090   # the router's admin port; MLPLATFORM_ADMIN_TOKEN
    python -m mlplatform.serving.rollout --config configs/house-price.yaml \\
        --namespace models --isvc house-price --sink-url http://payload-sink.models

or in code::

    backend = LocalRouterBackend("http://127.0.0.1:8090", token=admin_token)
    result = RolloutController(backend, cfg.rollout, Registry(cfg.registry), cfg.model_name).run()

On promote ``champion`` moves to the challenger's version (the reason carries the measured
figures; :meth:`Registry.set_alias` records who/when) and ``challenger`` is deleted. On rollback
the version is tagged ``rollback.reason``/``.at``/``.by`` first, then traffic goes back to
stable, then ``challenger`` is deleted: a controller that dies in between finds the version
marked rolled back, finishes the rollback and never steps that version up again.

Crash safety: SIGTERM (:func:`stop_on_sigterm`) stops the controller between two polls, leaving
traffic at the step's split and the step recorded (:mod:`.rollout_state`); a restarted
controller resumes there. Without a registry (tests, ad-hoc runs) only traffic moves.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

from mlplatform.config import RolloutConfig
from mlplatform.core.rollout import Decision, decide, describe_stats
from mlplatform.errors import PlatformError, TrafficError
from mlplatform.serving.rollout_state import (
    RolloutResult,
    RolloutState,
    RolloutStopped,
    resume_point,
    save_state,
    step_banner,
    step_progress,
)
from mlplatform.serving.rollout_watch import (
    backend_for,
    kserve_backend,
    pending_challenger,
    stop_on_sigterm,
    traffic_hint,
    watch,
)
from mlplatform.serving.traffic import TrafficBackend

if TYPE_CHECKING:
    from mlplatform.registry.mlflow_registry import Registry, VersionInfo

FIDELITY_METRIC = "lime_fidelity_r2_mean"
__all__ = [
    "RolloutController",
    "RolloutResult",
    "RolloutStopped",
    "kserve_backend",
    "main",
    "pending_challenger",
    "stop_on_sigterm",
    "watch",
]


@dataclass
class RolloutController:
    """Runs one canary rollout; ``clock``/``sleep`` are injectable for tests."""

    backend: TrafficBackend
    cfg: RolloutConfig
    registry: Registry | None = None
    model_name: str = ""
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time  # Unix seconds, for the state a restart reads
    sleep: Callable[[float], object] | None = None  # None: wait on ``stopping``
    poll_seconds: float = 1.0
    progress_seconds: float = 10.0
    progress: Callable[[str], None] = field(default=lambda line: print(line, flush=True))
    traffic_hint: str = "send traffic to the model's predict endpoint"
    stopping: threading.Event = field(default_factory=threading.Event)
    _decisions: list[tuple[int, Decision]] = field(default_factory=list, init=False, repr=False)
    _state: RolloutState | None = field(default=None, init=False, repr=False)

    def run(self) -> RolloutResult:
        """Step, poll and decide until promote or rollback, resuming a rollout a previous
        controller left unfinished. An unexpected error rolls the traffic back before it
        propagates; a stop request (:class:`RolloutStopped`) leaves it where it is."""
        self._decisions, self._state = [], None
        challenger = self._challenger()
        if challenger is not None and "rollback.at" in challenger.tags:
            return self._finish_rollback(challenger)
        if challenger is not None and not self.backend.serves(challenger.version):
            raise TrafficError(
                f"{self.model_name}: the canary does not serve the challenger "
                f"v{challenger.version} (not deployed yet, or not ready): no traffic was moved"
            )
        fidelity = self._fidelity(challenger)
        resume = None
        if challenger is not None:
            resume = resume_point(challenger.tags, challenger.version, len(self.cfg.steps))
        try:
            decision = self._run_steps(fidelity, challenger, resume)
        except RolloutStopped:
            raise
        except BaseException:
            self.backend.rollback()
            raise
        return self._finish(decision, challenger)

    def _run_steps(
        self, fidelity: float | None, challenger: VersionInfo | None, resume: RolloutState | None
    ) -> Decision:
        first = 0 if resume is None else resume.step
        if resume is not None:
            self.progress(f"rollout: resuming v{resume.version} at step {first + 1}")
        started = self.wall() if resume is None else resume.started_at
        for index in range(first, len(self.cfg.steps)):
            self._stop_if_asked()
            step_start = resume.step_started_at if resume and index == first else None
            version = None if challenger is None else challenger.version
            self._begin_step(index, version, started, step_start)
            decision = self._run_step(index, self.cfg.steps[index], fidelity)
            if decision.action != "advance":
                return decision
        raise AssertionError("decide() promotes or rolls back at the last step")

    def _begin_step(
        self, index: int, version: str | None, started: float, step_start: float | None
    ) -> None:
        """Set the step's split, then record it (its start: now, or the resumed step's)."""
        percent = self.cfg.steps[index]
        self.backend.set_canary_percent(percent)
        self.progress(step_banner(self.cfg, index, self.traffic_hint))
        if version is not None:
            at = self.wall() if step_start is None else step_start
            self._state = RolloutState(version, index, at, started)
            self._save(self._state)

    def _run_step(self, index: int, percent: int, fidelity: float | None) -> Decision:
        since_start = 0.0 if self._state is None else self.wall() - self._state.step_started_at
        start, base = self.clock() - max(0.0, since_start), self.backend.stats()[1].requests
        shown = self.clock()
        while True:
            stable, canary = self.backend.stats()
            canary = replace(canary, explain_fidelity=fidelity)
            elapsed = self.clock() - start
            seen = max(0, canary.requests - base)
            decision = decide(stable, canary, self.cfg, index, elapsed, seen)
            self._decisions.append((index, decision))
            if decision.action != "wait":
                self.progress(f"rollout: {decision.action}: {decision.reason}")
                return decision
            if self.clock() - shown >= self.progress_seconds:
                shown = self.clock()
                stats = describe_stats(stable, canary)
                self.progress(step_progress(self.cfg, index, seen, elapsed, stats))
            self._stop_if_asked(decision.reason)
            self._wait()

    def _wait(self) -> None:
        if self.sleep is None:
            self.stopping.wait(self.poll_seconds)
        else:
            self.sleep(self.poll_seconds)

    def _stop_if_asked(self, reason: str = "") -> None:
        if not self.stopping.is_set():
            return
        where = "before its first step"
        if self._state is not None:
            self._state = replace(self._state, last_decision=reason)
            self._save(self._state)
            where = f"at step {self._state.step + 1} ({self.cfg.steps[self._state.step]}%)"
        self.progress(f"rollout: stopped {where}; traffic left as it is, state recorded")
        raise RolloutStopped(f"{self.model_name}: rollout stopped {where}")

    def _save(self, state: RolloutState) -> None:
        if self.registry is not None:
            save_state(self.registry.client, self.model_name, state)

    def _finish(self, decision: Decision, challenger: VersionInfo | None) -> RolloutResult:
        version = challenger.version if challenger else None
        if decision.action == "promote":
            self.backend.promote()
            self._record_promotion(version, decision.reason)
            outcome: Literal["promoted", "rolled_back"] = "promoted"
        else:
            self._record_rollback(version, decision.reason)  # before traffic moves back
            self.backend.rollback()
            self._drop_challenger(version)
            outcome = "rolled_back"
        if self._state is not None:
            self._save(self._state.finished(outcome, decision.reason))
        self.progress(f"rollout: {outcome} (challenger version {version or 'unknown'})")
        return RolloutResult(outcome, decision.reason, tuple(self._decisions), version)

    def _finish_rollback(self, challenger: VersionInfo) -> RolloutResult:
        """A challenger already marked rolled back still holds the alias: a controller died
        mid-rollback. Send its traffic back and drop the alias; never step it up again."""
        reason = challenger.tags.get("rollback.reason", "")
        self.progress(f"rollout: finishing the rollback of v{challenger.version}: {reason}")
        self.backend.rollback()
        self._drop_challenger(challenger.version)
        return RolloutResult("rolled_back", reason, (), challenger.version)

    # -- registry ------------------------------------------------------------------------
    def _challenger(self) -> VersionInfo | None:
        if self.registry is None:
            return None
        from mlplatform.registry.mlflow_registry import CHALLENGER

        return self.registry.by_alias(self.model_name, CHALLENGER)

    def _fidelity(self, challenger: VersionInfo | None) -> float | None:
        if self.registry is None or challenger is None:
            return None
        return self.registry.run_metrics(challenger.run_id).get(FIDELITY_METRIC)

    def _record_promotion(self, version: str | None, reason: str) -> None:
        if self.registry is None or version is None:
            return
        from mlplatform.registry.mlflow_registry import CHALLENGER, CHAMPION

        self.registry.set_alias(self.model_name, CHAMPION, version, f"canary rollout: {reason}")
        self.registry.delete_alias(self.model_name, CHALLENGER)

    def _record_rollback(self, version: str | None, reason: str) -> None:
        if self.registry is None or version is None:
            return
        from mlplatform.registry.mlflow_registry import now, who

        tag = self.registry.client.set_model_version_tag
        tag(self.model_name, version, "rollback.reason", reason[:5000])
        tag(self.model_name, version, "rollback.by", who())
        tag(self.model_name, version, "rollback.at", now())  # last: it marks the rollback

    def _drop_challenger(self, version: str | None) -> None:
        if self.registry is None or version is None:
            return
        from mlplatform.registry.mlflow_registry import CHALLENGER

        self.registry.delete_alias(self.model_name, CHALLENGER)


def main(
    argv: list[str] | None = None,
    exit_code: bool = True,
    stopping: threading.Event | None = None,
) -> None:
    from mlplatform.config import load_config
    from mlplatform.registry.mlflow_registry import Registry

    p = argparse.ArgumentParser(description="Run one canary rollout (see the module docstring).")
    p.add_argument("--config", required=True, help="Platform config YAML.")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--router-url", help="Local router's admin port, http://host:port.")
    where.add_argument("--isvc", help="InferenceService name (KServe backend).")
    p.add_argument("--namespace", default="default", help="InferenceService namespace.")
    p.add_argument("--sink-url", default="http://payload-sink", help="Payload sink base URL.")
    p.add_argument("--no-registry", action="store_true", help="Move traffic only.")
    p.add_argument("--poll-seconds", type=float, default=1.0, help="Stats polling period.")
    args = p.parse_args(argv)
    try:
        cfg = load_config(args.config)
    except PlatformError as exc:
        raise SystemExit(f"error: {exc}") from None
    registry = None if args.no_registry else Registry(cfg.registry)
    ctl = RolloutController(
        backend_for(args),
        cfg.rollout,
        registry,
        cfg.model_name,
        poll_seconds=args.poll_seconds,
        stopping=stop_on_sigterm() if stopping is None else stopping,
        traffic_hint=traffic_hint(cfg, args),
    )
    try:
        result = ctl.run()
    except RolloutStopped as exc:
        if exit_code:
            raise SystemExit(f"{exc}: a restarted controller resumes it") from None
        raise
    print(f"{cfg.model_name}: {result.outcome}: {result.reason}", flush=True)
    if exit_code:
        raise SystemExit(0 if result.outcome == "promoted" else 1)


if __name__ == "__main__":
    main()
