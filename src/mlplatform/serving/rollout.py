"""The rollout controller: step the canary through ``rollout.steps``, judge it with
:func:`mlplatform.core.rollout.decide`, then promote or roll back, in traffic and in MLflow.

    python -m mlplatform.serving.rollout --config configs/house-price.yaml \\
        --router-url http://127.0.0.1:8080
    python -m mlplatform.serving.rollout --config configs/house-price.yaml \\
        --namespace models --isvc house-price --sink-url http://payload-sink.models

or in code::

    backend = LocalRouterBackend("http://127.0.0.1:8080")
    result = RolloutController(backend, cfg.rollout, Registry(cfg.registry), cfg.model_name).run()

On promote the ``champion`` alias moves to the challenger's version (the reason carries the
measured figures; who/when are recorded by :meth:`Registry.set_alias`) and the
``challenger`` alias is deleted. On rollback the challenger's version gets the tags
``rollback.reason``/``rollback.at``/``rollback.by`` and the ``challenger`` alias is deleted,
so the rejected version is not picked up as a canary again. Without a registry (tests,
ad-hoc runs) only traffic moves.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

from mlplatform.config import PlatformConfig, RolloutConfig
from mlplatform.core.rollout import Decision, VariantStats, decide
from mlplatform.errors import PlatformError, TrafficError
from mlplatform.serving.traffic import KServeBackend, LocalRouterBackend, TrafficBackend

if TYPE_CHECKING:
    from mlplatform.registry.mlflow_registry import Registry, VersionInfo

FIDELITY_METRIC = "lime_fidelity_r2_mean"


@dataclass(frozen=True)
class RolloutResult:
    outcome: Literal["promoted", "rolled_back"]
    reason: str
    decisions: tuple[tuple[int, Decision], ...]  # (step index, decision), in order
    version: str | None = None  # the challenger's registry version, when known


@dataclass
class RolloutController:
    """Runs one canary rollout; ``clock``/``sleep`` are injectable for tests."""

    backend: TrafficBackend
    cfg: RolloutConfig
    registry: Registry | None = None
    model_name: str = ""
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    poll_seconds: float = 1.0
    progress_seconds: float = 10.0
    progress: Callable[[str], None] = print
    _decisions: list[tuple[int, Decision]] = field(default_factory=list, init=False, repr=False)

    def run(self) -> RolloutResult:
        """Step, poll and decide until promote or rollback. An unexpected error rolls the
        traffic back before it propagates."""
        self._decisions = []
        challenger = self._challenger()
        if challenger is not None and not self.backend.serves(challenger.version):
            raise TrafficError(
                f"{self.model_name}: the canary does not serve the challenger "
                f"v{challenger.version} (not deployed yet, or not ready): no traffic was moved"
            )
        fidelity = self._fidelity(challenger)
        try:
            decision = self._run_steps(fidelity)
        except BaseException:
            self.backend.rollback()
            raise
        return self._finish(decision, challenger)

    def _run_steps(self, fidelity: float | None) -> Decision:
        for index, percent in enumerate(self.cfg.steps):
            decision = self._run_step(index, percent, fidelity)
            if decision.action != "advance":
                return decision
        raise AssertionError("decide() promotes or rolls back at the last step")

    def _run_step(self, index: int, percent: int, fidelity: float | None) -> Decision:
        self.backend.set_canary_percent(percent)
        self.progress(f"rollout: canary at {percent}% (step {index + 1}/{len(self.cfg.steps)})")
        start, base = self.clock(), self.backend.stats()[1].requests
        shown = start
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
                self.progress(f"rollout: {decision.reason} | {describe_stats(stable, canary)}")
            self.sleep(self.poll_seconds)

    def _finish(self, decision: Decision, challenger: VersionInfo | None) -> RolloutResult:
        version = challenger.version if challenger else None
        if decision.action == "promote":
            self.backend.promote()
            self._record_promotion(version, decision.reason)
            outcome: Literal["promoted", "rolled_back"] = "promoted"
        else:
            self.backend.rollback()
            self._record_rollback(version, decision.reason)
            outcome = "rolled_back"
        self.progress(f"rollout: {outcome} (challenger version {version or 'unknown'})")
        return RolloutResult(outcome, decision.reason, tuple(self._decisions), version)

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
        from mlplatform.registry.mlflow_registry import CHALLENGER, now, who

        tag = self.registry.client.set_model_version_tag
        tag(self.model_name, version, "rollback.reason", reason[:5000])
        tag(self.model_name, version, "rollback.at", now())
        tag(self.model_name, version, "rollback.by", who())
        self.registry.delete_alias(self.model_name, CHALLENGER)


def describe_stats(stable: VariantStats, canary: VariantStats) -> str:
    """One progress line: requests, error rates and p95 latency of both variants."""

    def one(name: str, s: VariantStats) -> str:
        p95 = "n/a" if s.p95_latency_ms is None else f"{s.p95_latency_ms:.1f}ms"
        return f"{name} {s.requests} req, {s.error_rate:.2%} errors, p95 {p95}"

    return f"{one('stable', stable)}; {one('canary', canary)}"


def _backend(args: argparse.Namespace) -> TrafficBackend:
    if args.router_url:
        return LocalRouterBackend(args.router_url)
    return kserve_backend(args.namespace, args.isvc, args.sink_url)


def kserve_backend(namespace: str, isvc: str, sink_url: str) -> KServeBackend:
    """A :class:`KServeBackend` with the pod's (or kubeconfig's) Kubernetes credentials."""
    from kubernetes import client, config  # type: ignore[import-untyped]

    config.load_config()
    return KServeBackend(namespace, isvc, client.CustomObjectsApi(), sink_url)


def pending_challenger(cfg: PlatformConfig) -> str | None:
    """The challenger version awaiting a rollout: not the champion, not already rolled back."""
    from mlplatform.registry.mlflow_registry import CHALLENGER, CHAMPION, Registry

    reg = Registry(cfg.registry)
    chall = reg.by_alias(cfg.model_name, CHALLENGER)
    champ = reg.by_alias(cfg.model_name, CHAMPION)
    if chall is None or (champ and champ.version == chall.version):
        return None
    return None if "rollback.at" in chall.tags else chall.version


def watch(
    cfg: PlatformConfig,
    run_once: Callable[[], object],
    interval: float,
    stop: Callable[[], bool] = lambda: False,
    served: Callable[[str], bool] = lambda version: True,
) -> None:
    """The cluster's controller loop: roll out each new challenger once the canary serves it
    (``served(version)``: a registered challenger may not be deployed yet); survive
    transient errors."""
    waiting: str | None = None
    while not stop():
        try:
            version = pending_challenger(cfg)
            if version is not None and not served(version):
                if waiting != version:
                    print(
                        f"{cfg.model_name}: challenger v{version} registered, waiting for a "
                        "canary revision serving it (make canary)",
                        flush=True,
                    )
                waiting = version
            elif version is not None:
                print(f"{cfg.model_name}: rolling out challenger v{version}", flush=True)
                run_once()
        except Exception as exc:  # a controller logs and keeps watching
            print(f"{cfg.model_name}: rollout attempt failed: {exc}", flush=True)
        time.sleep(interval)


def main(argv: list[str] | None = None, exit_code: bool = True) -> None:
    from mlplatform.config import load_config
    from mlplatform.registry.mlflow_registry import Registry

    p = argparse.ArgumentParser(description="Run one canary rollout (see the module docstring).")
    p.add_argument("--config", required=True, help="Platform config YAML.")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--router-url", help="Local canary router, http://host:port.")
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
        _backend(args), cfg.rollout, registry, cfg.model_name, poll_seconds=args.poll_seconds
    )
    result = ctl.run()
    print(f"{cfg.model_name}: {result.outcome}: {result.reason}", flush=True)
    if exit_code:
        raise SystemExit(0 if result.outcome == "promoted" else 1)


if __name__ == "__main__":
    main()
