"""The rollout controller's loop on the cluster (``mlplatform rollout --watch``): which
challenger awaits a rollout, stopping in order on SIGTERM, and the traffic backend the
command line names."""

from __future__ import annotations

import argparse
import signal
import threading
import time
from collections.abc import Callable

from mlplatform.config import PlatformConfig
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
                        "canary revision serving it (make canary)",
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


def kserve_backend(namespace: str, isvc: str, sink_url: str) -> KServeBackend:
    """A :class:`KServeBackend` with the pod's (or kubeconfig's) Kubernetes credentials."""
    from kubernetes import client, config  # type: ignore[import-untyped]

    config.load_config()
    return KServeBackend(namespace, isvc, client.CustomObjectsApi(), sink_url)
