"""The monitor job (``mlplatform monitor``; a CronJob on the cluster).

For one window of the payload log (the last aligned one, as the CronJob judges it, or the
trailing one up to now: :mod:`mlplatform.monitoring.windows`) it computes data drift against
the serving champion's reference (the sample of its training split logged with the version,
read back through the registry: :func:`reference_frame`;
:func:`mlplatform.core.drift.detect_drift`),
concept drift from labelled traffic against the validation error, and system health; writes a
JSON report (and Evidently's HTML for people) to ``monitor.reports_dir`` (a local folder or
``s3://...``: :mod:`mlplatform.monitoring.reports`); and, when data or concept drift is
found, writes the window's alert with its evidence (the report URLs included), once, through
:class:`~mlplatform.monitoring.alert_store.AlertStore`.

    result = run_job(load_config("configs/house-price.yaml"))
    result.alert  # None, or the AlertRecord of this window (status open or suppressed)
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlplatform.config import MonitorConfig, PlatformConfig
from mlplatform.core.alerts import Window
from mlplatform.core.drift import (
    ConceptDrift,
    DriftReport,
    SystemHealth,
    concept_drift,
    detect_drift,
    system_health,
)
from mlplatform.errors import ReportError
from mlplatform.monitoring.alert_store import AlertRecord, AlertStore
from mlplatform.monitoring.payload_window import WindowData, payload_frame
from mlplatform.monitoring.reports import report_url, write_report
from mlplatform.monitoring.windows import resolve_window


@dataclass(frozen=True)
class MonitorResult:
    """Everything one monitor run found and wrote."""

    model: str
    window: Window
    rows: int
    drift: DriftReport | None
    concept: ConceptDrift | None
    health: SystemHealth
    healthy: bool
    model_versions: dict[str, int]
    reasons: tuple[str, ...]
    alert: AlertRecord | None
    alert_created: bool
    json_url: str
    html_url: str | None
    notes: tuple[str, ...]

    def evidence(self) -> dict[str, Any]:
        """What the alert stores: window, versions, per-feature statistics, errors, reports."""
        return {
            "model": self.model,
            "window": {"start": self.window.start, "end": self.window.end},
            "model_versions": self.model_versions,
            "rows": self.rows,
            "reasons": list(self.reasons),
            "data_drift": None if self.drift is None else self.drift.to_dict(),
            "concept_drift": None if self.concept is None else asdict(self.concept),
            "health": {**asdict(self.health), "healthy": self.healthy},
            "reports": {"json": self.json_url, "html": self.html_url},
            "notes": list(self.notes),
        }

    def to_dict(self) -> dict[str, Any]:
        alert = None
        if self.alert is not None:
            a = self.alert
            alert = {"alert_id": a.alert_id, "status": a.status, "created": self.alert_created}
        return {**self.evidence(), "alert": alert}


def validation_error(cfg: PlatformConfig) -> float | None:
    """The serving model's held-out error: RMSE for regression, 1 − accuracy for
    classification. From the registry's champion run when there is one, else from the last
    local training (``<model_dir>/metrics.json``); None when neither exists."""
    from mlplatform.registry.mlflow_registry import CHAMPION, Registry

    reg = Registry(cfg.registry)
    champ = reg.by_alias(cfg.model_name, CHAMPION)
    if champ is not None:
        m = reg.run_metrics(champ.run_id)
        if cfg.task == "regression" and "rmse" in m:
            return float(m["rmse"])
        if cfg.task == "classification" and "accuracy" in m:
            return 1.0 - float(m["accuracy"])
    path = cfg.model_dir / "metrics.json"
    if not path.is_file():
        return None
    val = json.loads(path.read_text(encoding="utf-8"))["metrics"]["val"]
    return float(val["rmse"]) if cfg.task == "regression" else 1.0 - float(val["accuracy"])


def reference_frame(cfg: PlatformConfig) -> pd.DataFrame:
    """The drift reference of the serving champion: the sample of its training split logged
    with the version at registration (``reference/train_sample.parquet``), read back through
    the registry, so any pod can compute drift. Raises
    :class:`~mlplatform.errors.ModelVersionNotFoundError` (no champion) or
    :class:`~mlplatform.errors.ReferenceNotFoundError` (a version without one)."""
    from mlplatform.registry.mlflow_registry import CHAMPION, Registry

    return Registry(cfg.registry).reference(cfg.model_name, CHAMPION)


def _data_drift(
    reference: pd.DataFrame, data: WindowData, cfg: PlatformConfig, s: MonitorConfig
) -> tuple[DriftReport | None, str | None]:
    if data.rows < s.min_rows:
        return None, (
            f"data drift not judged: the window holds {data.rows} rows, it needs at least "
            f"{s.min_rows} (monitor.min_rows): send more requests, or judge a longer window "
            "(--since/--until)"
        )
    numeric, categorical = cfg.numeric_features, cfg.categorical_features
    report = detect_drift(reference, data.features, s, numeric=numeric, categorical=categorical)
    return report, None


def _concept(
    data: WindowData, cfg: PlatformConfig, s: MonitorConfig, baseline: float | None
) -> tuple[ConceptDrift | None, str | None]:
    labelled = int((np.isfinite(data.labels) & np.isfinite(data.predictions)).sum())
    if baseline is None:
        return None, "concept drift not judged: no validation error for the model"
    if labelled < s.min_labels:
        return None, (
            f"concept drift not judged: {labelled} rows have ground truth, it needs at least "
            f"{s.min_labels} (monitor.min_labels): post labels for more requests "
            "(POST /v1/feedback with their x-request-id)"
        )
    drift = concept_drift(
        data.labels, data.predictions, cfg.task, baseline, s.concept_tolerance, cfg.train.threshold
    )
    return drift, None


def _html(
    reference: pd.DataFrame, data: WindowData, cfg: PlatformConfig, url: str
) -> tuple[str | None, str | None]:
    from mlplatform.monitoring.evidently_report import save_drift_report

    try:
        save_drift_report(
            reference, data.features, cfg.numeric_features, cfg.categorical_features, url
        )
    except ReportError as exc:
        return None, f"HTML report not written: {exc}"
    return url, None


def _health_ok(health: SystemHealth, s: MonitorConfig) -> bool:
    p95 = health.p95_latency_ms
    return health.error_rate <= s.max_error_rate and (p95 is None or p95 <= s.max_p95_latency_ms)


def _reasons(drift: DriftReport | None, concept: ConceptDrift | None) -> tuple[str, ...]:
    hits = (
        ("data_drift", drift is not None and drift.dataset_drift),
        ("concept_drift", concept is not None and concept.drifted),
    )
    return tuple(name for name, hit in hits if hit)


def assess(
    cfg: PlatformConfig,
    s: MonitorConfig,
    reference: pd.DataFrame,
    data: WindowData,
    window: Window,
    baseline: float | None,
    reports_dir: str | Path,
) -> MonitorResult:
    """Drift, concept drift, health and the HTML report of one window (no alert yet); reports
    go to ``<reports_dir>/<model>/<window>.{json,html}``."""
    drift, note_d = _data_drift(reference, data, cfg, s)
    concept, note_c = _concept(data, cfg, s, baseline)
    html, note_h = None, None
    if drift is not None and s.html_report:
        url = report_url(reports_dir, cfg.model_name, window.slug(), ".html")
        html, note_h = _html(reference, data, cfg, url)
    health = system_health(data.latency_ms, data.status)
    return MonitorResult(
        model=cfg.model_name,
        window=window,
        rows=data.rows,
        drift=drift,
        concept=concept,
        health=health,
        healthy=_health_ok(health, s),
        model_versions=data.model_versions,
        reasons=_reasons(drift, concept),
        alert=None,
        alert_created=False,
        json_url=report_url(reports_dir, cfg.model_name, window.slug(), ".json"),
        html_url=html,
        notes=tuple(n for n in (note_d, note_c, note_h) if n),
    )


def raise_alert(result: MonitorResult, s: MonitorConfig, now: float) -> MonitorResult:
    """Write the window's alert (or find the one a previous run wrote)."""
    store = AlertStore(s.alert_store, s.claim_lease_seconds)
    versions = sorted(result.model_versions)
    outcome = store.record(
        result.model,
        result.window,
        result.reasons,
        result.evidence(),
        versions,
        now,
        s.cooldown_seconds,
    )
    return replace(result, alert=outcome.alert, alert_created=outcome.created)


def run_monitor(
    cfg: PlatformConfig,
    payload_store: str | Path,
    reference_df: pd.DataFrame,
    since: float | None = None,
    until: float | None = None,
    now: float | None = None,
    out_dir: str | Path | None = None,
    *,
    settings: MonitorConfig | None = None,
    baseline_error: float | None = None,
    aligned: bool = True,
) -> MonitorResult:
    """Monitor one window (see the module docstring); re-running it writes no second alert.

    When ``since``/``until`` are None, ``now`` picks the last aligned window (``aligned``, the
    CronJob's) or the trailing ``window_seconds`` up to ``now``; reports go to
    ``<out_dir>/<model>/<window>.{json,html}`` (default ``monitor.reports_dir``: a folder or
    ``s3://...``); ``baseline_error`` is the serving model's
    validation error (default: :func:`validation_error`).
    """
    s = settings or cfg.monitor
    t = time.time() if now is None else now
    window = resolve_window(since, until, t, s, aligned)
    data = payload_frame(payload_store, window, cfg, s.endpoints)
    baseline = baseline_error if baseline_error is not None else validation_error(cfg)
    result = assess(cfg, s, reference_df, data, window, baseline, out_dir or s.reports_dir)
    if result.reasons:
        result = raise_alert(result, s, t)
    write_report(result.json_url, json.dumps(result.to_dict(), indent=2))
    return result


def run_job(cfg: PlatformConfig, now: float | None = None) -> MonitorResult:
    """The CLI/CronJob entry: the last aligned window of ``serve.payload_store`` against the
    serving champion's reference, with the config's ``monitor`` settings."""
    return run_monitor(cfg, cfg.serve.payload_store, reference_frame(cfg), now=now)
