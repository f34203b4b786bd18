"""Settings of the monitor job. To be moved into :class:`~mlplatform.config.PlatformConfig`
as section ``monitor`` (then this module only re-exports it); until then
:func:`monitor_settings` reads ``cfg.monitor`` when the config has it, else the defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, cast

from pydantic import BaseModel, ConfigDict, Field

from mlplatform.config import PlatformConfig


class MonitorConfig(BaseModel):
    """Windows, drift tests, alert cooldown and retrain-claim lease of the monitor job."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    window_seconds: int = Field(
        default=3600, gt=0, description="Length of the aligned monitoring window, seconds."
    )
    window_lag_seconds: float = Field(
        default=0.0,
        ge=0,
        description="Judge the last window that ended this long before now (lets feedback land).",
    )
    endpoints: tuple[str, ...] = Field(
        default=("predict", "infer"),
        min_length=1,
        description="Payload endpoints whose requests are monitored (not 'explain').",
    )
    min_rows: int = Field(
        default=100, gt=0, description="Fewer logged rows in a window: no data-drift verdict."
    )
    ks_method: Literal["auto", "asymp"] = Field(
        default="auto",
        description="KS p-value as scipy's ks_2samp: auto = exact up to 10 000 rows (Evidently).",
    )
    cat_method: Literal["chi2", "chisquare", "psi"] = Field(
        default="chi2",
        description="Categorical test: chi2 = 2×k contingency χ²; chisquare = Evidently's "
        "goodness of fit to the reference shares; psi = population stability index.",
    )
    threshold: float = Field(
        default=0.05, gt=0, lt=1, description="p-value at or below which a column drifts."
    )
    psi_threshold: float = Field(default=0.1, gt=0, description="PSI at or above which it drifts.")
    drift_share: float = Field(
        default=0.5, gt=0, le=1, description="Dataset drift when this share of columns drifts."
    )
    concept_tolerance: float = Field(
        default=0.2,
        ge=0,
        description="Concept drift when labelled error > validation error × (1 + tolerance).",
    )
    min_labels: int = Field(
        default=30, gt=0, description="Fewer labelled rows in a window: no concept-drift verdict."
    )
    max_error_rate: float = Field(
        default=0.01, ge=0, le=1, description="Health: error rate (5xx or no response) ceiling."
    )
    max_p95_latency_ms: float = Field(default=500.0, gt=0, description="Health: p95 ceiling.")
    cooldown_seconds: float = Field(
        default=86_400.0,
        ge=0,
        description="No new alert for a model whose last alert's window ended less than this "
        "long before or after (event time); such windows are stored as 'suppressed'.",
    )
    claim_lease_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="A claimed alert whose claimer recorded no run within this is re-claimable.",
    )
    alert_db: Path = Field(
        default=Path("artifacts/alerts.db"), description="SQLite alert store (embedded)."
    )
    reports_dir: Path = Field(
        default=Path("artifacts/monitoring"), description="Where HTML/JSON reports are written."
    )
    html_report: bool = Field(
        default=True, description="Render Evidently's DataDriftPreset HTML for every window."
    )


def monitor_settings(cfg: PlatformConfig) -> MonitorConfig:
    """``cfg.monitor`` once the section exists in the one config, else the defaults."""
    section = getattr(cfg, "monitor", None)
    return MonitorConfig() if section is None else cast(MonitorConfig, section)
