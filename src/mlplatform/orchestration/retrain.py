"""The retrain trigger: each drift alert starts at most one training pipeline run.

    open alert ──claim (lease)──▶ claimed ──start run──▶ run_started(run id) ──▶ resolved(version)

Exactly once, even when the trigger re-runs, runs in several processes or pods at once
(they share ``monitor.alert_store``), or crashes midway:

* the claim is one conditional update in the alert store: one trigger wins each alert;
* while a run is being started the winner's heartbeat thread extends the claim's lease
  (``monitor.claim_lease_seconds``) every third of it, so a slow start is never taken over;
* a crash after the alert is written but before a run starts leaves it ``claimed``; when the
  lease expires another trigger re-claims it and starts the run;
* a crash after the run registered its model but before the trigger recorded it is recovered
  from the registry: the run tags its version with ``lineage.trigger = alert-<model>-<id>``
  (alert ids are global to the alert store), so the trigger records that version instead of
  starting a second run (on the cluster, the KFP run has that name and is looked up by it).

A start that fails is not parked: for a transient reason (a dependency down: an
:class:`~mlplatform.errors.UnavailableError`, or the KFP API unreachable or answering 5xx) the
claim's lease is cut to ``monitor.retrain_retry_seconds`` (doubled after each failure) so a
later trigger run claims it again; for a permanent one (the pipeline failed, KFP refused the
run), or after ``monitor.retrain_max_attempts`` starts, the alert is marked ``failed`` with the
error. Both are recorded on the alert (``failures``, ``last_error``).

The run id links the alert to the resulting model version's lineage (``mlplatform lineage``).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mlplatform.config import PlatformConfig
from mlplatform.config.sections import MonitorConfig, ServeConfig
from mlplatform.errors import PipelineRunError, PlatformError, UnavailableError, UpstreamError
from mlplatform.monitoring.alert_store import AlertStore

Backend = Literal["local", "kfp"]
#: (config, trigger name) → (run id, registered version or None while the run is pending).
Starter = Callable[[PlatformConfig, str], tuple[str, str | None]]


@dataclass(frozen=True)
class RetrainOutcome:
    alert_id: int
    action: Literal["started", "recovered", "retry", "failed"]
    run_id: str | None
    version: str | None
    message: str


def trigger_name(model: str, alert_id: int) -> str:
    """The run name (and lineage tag) of an alert's retraining run: unique in the database.

    >>> trigger_name("house-price", 7)
    'alert-house-price-7'
    """
    return f"alert-{model}-{alert_id}"


def run_config(cfg: PlatformConfig) -> PlatformConfig:
    """The config a pipeline run gets as its ``config_json`` parameter, which KFP shows to
    anyone who can open the run: ``cfg`` with the stores' URLs (on the cluster they carry the
    stores' database password, and no pipeline step opens a store) back at their defaults."""
    return cfg.with_overrides(
        serve={"payload_store": ServeConfig.model_fields["payload_store"].default},
        monitor={"alert_store": MonitorConfig.model_fields["alert_store"].default},
    )


def version_for_trigger(cfg: PlatformConfig, trigger: str) -> str | None:
    """The model version a run for ``trigger`` registered, if any (crash recovery)."""
    from mlplatform.registry.mlflow_registry import Registry

    for info in Registry(cfg.registry).versions(cfg.model_name):
        if info.tags.get("lineage.trigger") == trigger:
            return info.version
    return None


def local_starter(pipeline: Path | None, base: Path, log: Path | None = None) -> Starter:
    """Start the compiled pipeline with kfp.local (blocks until it finishes); task logs go to
    ``log`` when given."""

    def start(cfg: PlatformConfig, trigger: str) -> tuple[str, str | None]:
        from mlplatform.orchestration.runner import run_local

        run = run_local(cfg, pipeline, base, trigger=trigger, log=log)
        return run.run_dir.name, run.version

    return start


def kfp_starter(host: str) -> Starter:
    """Start a run of the uploaded pipeline through the KFP API, named after the trigger."""

    def start(cfg: PlatformConfig, trigger: str) -> tuple[str, str | None]:
        import kfp

        from mlplatform.orchestration.training_pipeline import compiled_pipeline

        with _kfp_errors(host):
            client = kfp.Client(host=host)
            found = client.list_runs(page_size=1, filter=_name_filter(trigger)).runs
            if found:  # started before a crash: never a second run
                return str(found[0].run_id), None
            run = client.create_run_from_pipeline_package(
                str(compiled_pipeline()),
                arguments={"config_json": run_config(cfg).to_json(), "trigger": trigger},
                run_name=trigger,
                experiment_name=f"{cfg.model_name}-retrain",
            )
        return str(run.run_id), None

    return start


@contextmanager
def _kfp_errors(host: str) -> Iterator[None]:
    """The KFP client's errors as platform errors: a 4xx answer is permanent
    (:class:`PipelineRunError`), anything else (unreachable, 5xx) transient
    (:class:`UpstreamError`)."""
    try:
        yield
    except PlatformError:
        raise
    except Exception as exc:  # kfp_server_api.ApiException, urllib3 and socket errors
        status = getattr(exc, "status", None)
        reason = f"KFP API {host}: {type(exc).__name__}: {str(exc).strip()[:500]}"
        if isinstance(status, int) and 400 <= status < 500:
            raise PipelineRunError(reason) from None
        raise UpstreamError(reason) from None


def _name_filter(name: str) -> str:
    import json

    return json.dumps(
        {"predicates": [{"key": "display_name", "operation": "EQUALS", "string_value": name}]}
    )


def retrain_pending(
    cfg: PlatformConfig, start: Starter, owner: str | None = None, now: float | None = None
) -> list[RetrainOutcome]:
    """Claim every claimable alert of this model and start (or recover) its one run."""
    store = AlertStore(cfg.monitor.alert_store, cfg.monitor.claim_lease_seconds)
    me = owner or f"{socket.gethostname()}:{os.getpid()}"
    out = []
    for alert in store.claimable(now):
        if alert.model == cfg.model_name and store.claim_for_retrain(alert.alert_id, me, now):
            out.append(_run_for(cfg, store, alert.alert_id, me, start, now))
    for alert in store.runs_pending():  # runs started earlier (e.g. on the cluster)
        version = version_for_trigger(cfg, trigger_name(alert.model, alert.alert_id))
        if alert.model == cfg.model_name and version is not None:
            store.resolve(alert.alert_id, version)
            out.append(
                RetrainOutcome(
                    alert.alert_id,
                    "recovered",
                    alert.run_id,
                    version,
                    "the run registered its model",
                )
            )
    return out


def _run_for(
    cfg: PlatformConfig,
    store: AlertStore,
    alert_id: int,
    owner: str,
    start: Starter,
    now: float | None = None,
) -> RetrainOutcome:
    """Start (or recover) the one run of a claimed alert, heartbeating the claim throughout."""
    trigger = trigger_name(cfg.model_name, alert_id)
    with heartbeat(store, alert_id, owner, now) as lost:
        done = version_for_trigger(cfg, trigger)
        if done is not None:
            store.record_run(alert_id, f"recovered-{trigger}", owner)
            store.resolve(alert_id, done)
            return RetrainOutcome(alert_id, "recovered", None, done, "found the run's version")
        if lost.is_set():
            return RetrainOutcome(alert_id, "failed", None, None, "claim taken over; no run")
        try:
            run_id, version = start(cfg, trigger)
        except PlatformError as exc:
            error: PlatformError | None = exc
        else:
            error = None
            store.record_run(alert_id, run_id, owner)
    if error is not None:  # after the heartbeat stopped: it would extend the lease again
        return _after_failed_start(cfg, store, alert_id, owner, error, now)
    if version is None:  # started elsewhere (KFP): recorded once it registered its version
        return RetrainOutcome(alert_id, "started", run_id, None, "run started")
    store.resolve(alert_id, version)
    return RetrainOutcome(alert_id, "started", run_id, version, f"run finished: v{version}")


def _after_failed_start(
    cfg: PlatformConfig,
    store: AlertStore,
    alert_id: int,
    owner: str,
    error: PlatformError,
    now: float | None,
) -> RetrainOutcome:
    """Retry later (transient error, attempts left) or mark the alert failed."""
    m = cfg.monitor
    failures = store.get(alert_id).failures
    reason = f"{type(error).__name__}: {error}"
    if isinstance(error, UnavailableError) and failures + 1 < m.retrain_max_attempts:
        delay = m.retrain_retry_seconds * 2**failures
        if store.retry_later(alert_id, owner, reason, delay, now):
            return RetrainOutcome(
                alert_id,
                "retry",
                None,
                None,
                f"{reason} (attempt {failures + 1}, retry in {delay:.0f} s)",
            )
        return RetrainOutcome(alert_id, "failed", None, None, "claim taken over; no run")
    store.fail(alert_id, owner, reason)
    return RetrainOutcome(alert_id, "failed", None, None, reason)


@contextmanager
def heartbeat(
    store: AlertStore, alert_id: int, owner: str, now: float | None = None
) -> Iterator[threading.Event]:
    """Keep ``owner``'s claim alive while the body runs: a thread extends the lease at once
    and then every third of ``lease_seconds`` (on the database's clock; from ``now`` onwards
    when a test gives one). The yielded event is set when a beat finds the claim lost."""
    stop, lost, began = threading.Event(), threading.Event(), time.monotonic()

    def beat() -> None:
        while True:
            t = None if now is None else now + time.monotonic() - began
            try:
                if not store.heartbeat(alert_id, owner, t):
                    lost.set()  # taken over: record_run will refuse this owner
                    return
            except PlatformError:
                pass  # the store is briefly unreachable: the next beat retries
            if stop.wait(store.lease_seconds / 3):
                return

    thread = threading.Thread(target=beat, name=f"heartbeat-{alert_id}", daemon=True)
    thread.start()
    try:
        yield lost
    finally:
        stop.set()
        thread.join()
