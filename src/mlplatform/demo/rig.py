"""The demo's world: a config with every path under one folder and free loopback ports, and
the world later (later events, new ids; after the change, moved inputs and prices)."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import yaml

from mlplatform.config import PlatformConfig, load_config
from mlplatform.core.training import generate
from mlplatform.serving.stack import free_port


def loop_config(work: Path, base: Path, rows: int = 3000) -> tuple[PlatformConfig, Path]:
    """house-price with every path under ``work`` and free loopback ports; written as YAML."""
    (work / "feature_repo").mkdir(parents=True, exist_ok=True)
    shutil.copy(base / "feature_repo/feature_store.yaml", work / "feature_repo")
    ports = (
        *("router_port", "router_admin_port", "stable_port", "canary_port"),
        *("transformer_port", "explainer_port"),
    )
    cfg = load_config(base / "configs/house-price.yaml").with_overrides(
        artifacts_dir=str(work / "artifacts"),  # type: ignore[arg-type]
        data={"rows": rows, "data_dir": str(work / "data")},
        registry={"tracking_uri": f"sqlite:///{work}/mlflow.db", "artifact_root": str(work / "ml")},
        feature_store={"repo_dir": str(work / "feature_repo")},
        serve={"payload_store": f"sqlite:///{work}/payloads.db", **{p: free_port() for p in ports}},
        monitor={
            "alert_store": f"sqlite:///{work}/alerts.db",
            "reports_dir": str(work / "monitoring"),
            "min_rows": 100,
            "min_labels": 30,
        },
        rollout={
            "min_requests": 60,
            "max_step_seconds": 120,
            "max_p95_latency_ratio": 5.0,
            "max_prediction_shift": 0.5,
        },
    )
    path = work / f"{cfg.model_name}.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json", by_alias=True)))
    return cfg, path


def shifted_world(cfg: PlatformConfig, shift: float) -> pd.DataFrame:
    """The world later: later events, new ids; with ``shift`` > 0 moved inputs and prices
    (0: the unchanged world's new homes, the baseline traffic)."""
    later = cfg.with_overrides(
        data={"shift": shift, "seed": cfg.data.seed + 100, "start_date": "2026-07-01"}
    )
    df = generate(later.data)
    df[cfg.entity] += 1_000_000
    return df


def now() -> float:
    return datetime.now(UTC).timestamp()
