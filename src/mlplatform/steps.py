"""Pipeline steps: what each KFP component does, as plain functions of paths.

A component body only parses its inputs, calls one function here and writes its
outputs, so the same step runs in ``kfp.local``, on the cluster and in tests.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlplatform.config import PlatformConfig
from mlplatform.core.datasets import Splits
from mlplatform.core.gates import GateFailedError, GateReport, evaluate_gate
from mlplatform.core.model import LinearModel
from mlplatform.core.scaling import FeatureScaler, TargetScaler
from mlplatform.core.training import (
    Normalization,
    evaluate,
    fit_normalization,
    split_frame,
    target_vector,
    train_model,
)
from mlplatform.explain_job import explain_model_job
from mlplatform.jobs import data_path, metrics_document, read_data, write_json
from mlplatform.reporting.explain_report import write_model_report
from mlplatform.reporting.plots import loss_curve_png

SPLITS = ("train", "val", "test")


def config_hash(cfg: PlatformConfig) -> str:
    """Short, stable hash of the whole config (recorded with every model version)."""
    return hashlib.sha256(cfg.to_json().encode()).hexdigest()[:12]


def data_step(cfg: PlatformConfig, out: Path) -> dict[str, Any]:
    """Training set from the Feast offline store (point-in-time join) for every raw event.

    The raw file (``data/<model>.parquet``, DVC-tracked) gives the entity ids and event
    times; its DVC md5 is the data version recorded with the model.
    """
    from mlplatform.features import apply, feature_store, training_frame
    from mlplatform.features.definitions import service_name
    from mlplatform.versioning import data_version

    source = data_path(cfg)
    events = read_data(source)[[cfg.entity, cfg.timestamp]]
    store = feature_store(cfg.feature_store.repo_dir, cfg.feature_store.store_yaml)
    apply(store, [cfg])
    frame = training_frame(store, cfg, events)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out, index=False)
    return {
        "data_md5": data_version(source),
        "feature_service": service_name(cfg),
        "rows": len(frame),
        "data_path": str(source),
    }


def normalize_step(
    cfg: PlatformConfig, dataset: Path, scaler_out: Path, split_out: dict[str, Path]
) -> dict[str, int]:
    """Split, fit the scaler on train only, write it and each split (raw + ``n__`` columns)."""
    splits = split_frame(cfg, read_data(dataset))
    scaler, target = fit_normalization(cfg, splits.train)
    write_json(scaler_out, {"features": scaler.to_dict(), "target": vars(target)})
    for name in SPLITS:
        part: pd.DataFrame = getattr(splits, name)
        design = pd.DataFrame(
            scaler.transform(part), columns=[f"n__{c}" for c in scaler.design_names]
        )
        split_out[name].parent.mkdir(parents=True, exist_ok=True)
        pd.concat([part, design], axis=1).to_parquet(split_out[name], index=False)
    return {name: len(getattr(splits, name)) for name in SPLITS}


def read_normalization(path: Path) -> Normalization:
    doc = json.loads(path.read_text(encoding="utf-8"))
    return FeatureScaler.from_dict(doc["features"]), TargetScaler(**doc["target"])


def read_splits(paths: dict[str, Path]) -> Splits:
    return Splits(*(read_data(paths[n]) for n in SPLITS))


def train_step(
    cfg: PlatformConfig, scaler: Path, split_in: dict[str, Path], model_out: Path, curve_out: Path
) -> dict[str, Any]:
    """GD with the stored scaler; writes model.json and the loss curve; returns the metrics doc."""
    outcome = train_model(cfg, read_splits(split_in), norm=read_normalization(scaler))
    outcome.model.save(model_out)
    loss_curve_png(outcome.fit, curve_out, f"{cfg.model_name}: {cfg.train.loss} loss")
    return metrics_document(cfg, outcome)


def flat_metrics(doc: dict[str, Any], split: str = "test") -> dict[str, float]:
    """Test-split metrics from a metrics document, as one flat dict."""
    return {k: float(v) for k, v in doc["metrics"][split].items()}


def explain_step(
    cfg: PlatformConfig, model_path: Path, split_in: dict[str, Path], report_out: Path
) -> dict[str, float]:
    """LIME + Anchor on a sample of test rows; quality metrics; the per-model HTML report."""
    model = LinearModel.load(model_path)
    splits = read_splits(split_in)
    result = explain_model_job(cfg, model, splits.train, splits.test, np.random.default_rng(0))
    write_model_report(result, report_out, f"{cfg.model_name}: explanations")
    return result.as_metrics()


def gate_step(
    cfg: PlatformConfig,
    metrics_doc: dict[str, Any],
    quality: dict[str, float],
    gate_out: Path,
    test: Path | None = None,
) -> GateReport:
    """Evaluate the gate against the registry's champion; write it; raise if it failed.

    The champion is scored on the candidate's own test split (``test``), so both models are
    judged on the same rows, also after the data moved; without it, the champion's logged
    metrics are used.
    """
    from mlplatform.registry.mlflow_registry import CHAMPION, Registry

    reg = Registry(cfg.registry)
    champ = reg.by_alias(cfg.model_name, CHAMPION)
    champ_metrics = None
    if champ is not None and test is not None:
        part = read_data(test)
        champion = reg.load(cfg.model_name, CHAMPION)
        champ_metrics = evaluate(champion, part, target_vector(cfg, part))
    elif champ is not None:
        champ_metrics = reg.run_metrics(champ.run_id)
    metrics = {**flat_metrics(metrics_doc), **quality}
    report = evaluate_gate(
        cfg.task, metrics, cfg.validate_, champ_metrics, champ.version if champ else None
    )
    write_json(gate_out, report.to_dict())
    if not report.passed and cfg.validate_.fail_pipeline:
        raise GateFailedError(
            f"{cfg.model_name}: validation gate failed: " + "; ".join(report.reasons())
        )
    return report


def register_step(cfg: PlatformConfig, paths: dict[str, Any], lineage: dict[str, str]) -> str:
    """Register the validated model as ``challenger`` (also ``champion`` if there is none yet).

    ``paths``: model, metrics, quality, gate (files) and reports (list of files).
    """
    from mlplatform.features.definitions import service_name
    from mlplatform.registry.mlflow_registry import CHALLENGER, CHAMPION, Registry

    gate = json.loads(Path(paths["gate"]).read_text(encoding="utf-8"))
    if not gate.get("passed"):
        raise GateFailedError(
            f"{cfg.model_name}: refusing to register a model that failed the gate"
        )
    doc = json.loads(Path(paths["metrics"]).read_text(encoding="utf-8"))
    quality = json.loads(Path(paths["quality"]).read_text(encoding="utf-8"))
    reg = Registry(cfg.registry)
    info = reg.log_and_register(
        Path(paths["model"]),
        params=flat_params(cfg),
        metrics={**flat_metrics(doc), **quality},
        artifacts=[Path(p) for p in paths["reports"]],
        lineage={
            **lineage,
            "config_hash": config_hash(cfg),
            "data_path": str(data_path(cfg)),
            "feature_service": service_name(cfg),
            "validation": json.dumps(gate),
        },
    )
    if reg.by_alias(cfg.model_name, CHAMPION) is None:
        reg.set_alias(cfg.model_name, CHAMPION, info.version, "first validated version")
    reg.set_alias(cfg.model_name, CHALLENGER, info.version, "passed the validation gate")
    return info.version


def flat_params(cfg: PlatformConfig) -> dict[str, str]:
    """Stage parameters as ``section.field`` → value (MLflow params)."""
    raw = json.loads(cfg.to_json())
    return {
        f"{section}.{k}": json.dumps(v)
        for section in ("data", "normalize", "train", "explain", "validate")
        for k, v in raw[section].items()
    }
