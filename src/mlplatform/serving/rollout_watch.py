"""The rollout controller's loop on the cluster (``mlplatform rollout --watch``): which
challenger awaits a rollout, waiting for a canary that serves it, stopping in order on
SIGTERM, and the traffic backend the command line names."""

from __future__ import annotations

import argparse
import signal
import threading
import time
from collections.abc import Callable

from mlplatform.config import PlatformConfig
from mlplatform.errors import TrafficError, UpstreamError
from mlplatform.serving.rollout_state import RolloutStopped
from mlplatform.serving.traffic import KServeBackend, LocalRouterBackend, TrafficBackend


def pending_challenger(cfg: PlatformConfig) -> str | None:
    """The challenger version awaiting a rollout: not the champion and not rolled back, or
    marked rolled back while still holding the alias (a rollback to finish)."""
    from mlplatform.registry.mlflow_registry import CHALLENGER, CHAMPION, Registry

    reg = Registry(cfg.registry)
    chall = reg.by_alias(cfg.model_name, CHALLENGER)
    champ = reg.by_alias(cfg.model_name, CHAMPION)
    if chall is None or (champ and champ.version == chall.version):
        return None
    return chall.version


def challenger_to_roll_out(cfg: PlatformConfig, config_path: object) -> tuple[str, bool]:
    """(challenger version awaiting a rollout, whether it is marked rolled back), or a
    :class:`TrafficError` saying how to register one."""
    from mlplatform.registry.mlflow_registry import CHALLENGER, CHAMPION, Registry

    reg = Registry(cfg.registry)
    chall = reg.by_alias(cfg.model_name, CHALLENGER)
    champ = reg.by_alias(cfg.model_name, CHAMPION)
    if chall is None or (champ is not None and champ.version == chall.version):
        serving = f" (the champion is v{champ.version})" if champ else ""
        raise TrafficError(
            f"{cfg.model_name} has no challenger to roll out{serving}: register one first with "
            f"`mlplatform retrain --config {config_path}` (after a drift alert) or "
            f"`mlplatform pipeline run --config {config_path}`"
        )
    return chall.version, "rollback.at" in chall.tags


def await_canary(
    backend: TrafficBackend,
    version: str,
    timeout: float,
    hint: str,
    say: Callable[[str], object] = print,
    clock: Callable[[], float] = time.monotonic,
    wait: Callable[[float], object] = time.sleep,
) -> None:
    """Return once the canary serves ``version`` (the local ``mlplatform serve`` deploys a new
    challenger within its registry poll); after ``timeout`` seconds a :class:`TrafficError`
    ending with ``hint`` (what to run), and an unreachable router says the same at once."""
    deadline, told = clock() + timeout, False
    while True:
        try:
            if backend.serves(version):
                return
        except UpstreamError as exc:
            raise UpstreamError(f"{exc}: {hint}") from None
        if clock() >= deadline:
            raise TrafficError(
                f"the canary does not serve the challenger v{version} after {timeout:.0f} s: {hint}"
            )
        if not told:
            say(f"rollout: waiting up to {timeout:.0f} s for a canary serving v{version} ...")
            told = True
        wait(1.0)


def stop_on_sigterm(event: threading.Event | None = None) -> threading.Event:
    """An event SIGTERM sets (Kubernetes' stop signal; the handler is installed when called
    from the main thread), for the controller and :func:`watch` to stop in order."""
    event = event or threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, frame: event.set())
    return event


def watch(
    cfg: PlatformConfig,
    run_once: Callable[[], object],
    interval: float,
    stop: Callable[[], bool] = lambda: False,
    served: Callable[[str], bool] = lambda version: True,
    wait: Callable[[float], object] = time.sleep,
    deploy_hint: str = "make canary",
) -> None:
    """The cluster's controller loop: roll out each new challenger once the canary serves it
    (``served(version)``: a registered challenger may not be deployed yet), resume one a
    stopped controller left mid-way, finish a rollback that was recorded but not completed;
    survive transient errors."""
    waiting: str | None = None
    while not stop():
        try:
            version = pending_challenger(cfg)
            if version is not None and not served(version) and not _rolled_back(cfg):
                if waiting != version:
                    print(
                        f"{cfg.model_name}: challenger v{version} registered, waiting for a "
                        f"canary serving it ({deploy_hint})",
                        flush=True,
                    )
                waiting = version
            elif version is not None:
                print(f"{cfg.model_name}: rolling out challenger v{version}", flush=True)
                run_once()
        except RolloutStopped:
            return
        except Exception as exc:  # a controller logs and keeps watching
            print(f"{cfg.model_name}: rollout attempt failed: {exc}", flush=True)
        wait(interval)


def _rolled_back(cfg: PlatformConfig) -> bool:
    from mlplatform.registry.mlflow_registry import CHALLENGER, Registry

    chall = Registry(cfg.registry).by_alias(cfg.model_name, CHALLENGER)
    return chall is not None and "rollback.at" in chall.tags


def backend_for(args: argparse.Namespace) -> TrafficBackend:
    if args.router_url:
        return LocalRouterBackend(args.router_url)
    return kserve_backend(args.namespace, args.isvc, args.sink_url)


def traffic_hint(cfg: PlatformConfig, args: argparse.Namespace) -> str:
    """What a rollout step waits for, said as what to do: where to send the traffic."""
    if args.router_url:
        router = f"http://{cfg.serve.host}:{cfg.serve.router_port}"
        return f"send traffic: POST {router}/v1/models/{cfg.model_name}:predict"
    return f"send traffic to the InferenceService {args.namespace}/{args.isvc}"


def kserve_backend(namespace: str, isvc: str, sink_url: str) -> KServeBackend:
    """A :class:`KServeBackend` with the pod's (or kubeconfig's) Kubernetes credentials."""
    from kubernetes import client, config  # type: ignore[import-untyped]

    config.load_config()
    return KServeBackend(namespace, isvc, client.CustomObjectsApi(), sink_url)
