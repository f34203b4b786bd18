"""Stage 6, register: log the validated model to MLflow with its lineage and its drift
reference (a sample of the training split); set the aliases."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd

from mlplatform.config import PlatformConfig
from mlplatform.errors import GateFailedError
from mlplatform.stages.data import data_source
from mlplatform.stages.io import flat_metrics, read_data, read_json


def config_hash(cfg: PlatformConfig) -> str:
    """Short, stable hash of the whole config (recorded with every model version)."""
    return hashlib.sha256(cfg.to_json().encode()).hexdigest()[:12]


def register_step(cfg: PlatformConfig, paths: dict[str, Any], lineage: dict[str, str]) -> str:
    """Register the validated model as ``challenger`` (also ``champion`` if there is none yet).

    ``paths``: model, metrics, quality, gate, train (the training split; files) and reports
    (list of files). The version carries :func:`reference_sample` of the training split as
    its drift reference (``Registry.reference``).
    """
    from mlplatform.features.definitions import service_name
    from mlplatform.registry.mlflow_registry import CHALLENGER, CHAMPION, Registry

    gate = read_json(Path(paths["gate"]))
    if not gate.get("passed"):
        raise GateFailedError(
            f"{cfg.model_name}: refusing to register a model that failed the gate"
        )
    doc = read_json(Path(paths["metrics"]))
    quality = read_json(Path(paths["quality"]))
    reg = Registry(cfg.registry)
    info = reg.log_and_register(
        Path(paths["model"]),
        params=flat_params(cfg),
        metrics={**flat_metrics(doc), **quality},
        artifacts=[Path(p) for p in paths["reports"]],
        reference=reference_sample(cfg, read_data(Path(paths["train"]))),
        lineage={
            **lineage,
            "config_hash": config_hash(cfg),
            "data_path": data_source(cfg),
            "feature_service": service_name(cfg),
            "validation": json.dumps(gate),
        },
    )
    if reg.by_alias(cfg.model_name, CHAMPION) is None:
        reg.set_alias(cfg.model_name, CHAMPION, info.version, "first validated version")
    reg.set_alias(cfg.model_name, CHALLENGER, info.version, "passed the validation gate")
    return info.version


def reference_sample(cfg: PlatformConfig, train: pd.DataFrame) -> pd.DataFrame:
    """The drift reference: raw feature columns and the target of a seeded sample of the
    training split, at most ``explain.background_rows`` rows (the explainers' rows)."""
    n = min(len(train), cfg.explain.background_rows)
    rows = train.sample(n=n, random_state=cfg.data.seed) if n < len(train) else train
    return rows[[*cfg.feature_names, cfg.target]].reset_index(drop=True)


def flat_params(cfg: PlatformConfig) -> dict[str, str]:
    """Stage parameters as ``section.field`` → value (MLflow params)."""
    raw = json.loads(cfg.to_json())
    return {
        f"{section}.{k}": json.dumps(v)
        for section in ("data", "normalize", "train", "explain", "gate")
        for k, v in raw[section].items()
    }
