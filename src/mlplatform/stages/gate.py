"""Stage 5, gate: thresholds, explanation quality and the champion to beat; raises when failed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlplatform.config import PlatformConfig
from mlplatform.core.gate import GateReport, evaluate_gate
from mlplatform.core.training import evaluate, target_vector
from mlplatform.errors import GateFailedError
from mlplatform.stages.io import flat_metrics, read_data, write_json


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
        cfg.task, metrics, cfg.gate, champ_metrics, champ.version if champ else None
    )
    write_json(gate_out, report.to_dict())
    if not report.passed and cfg.gate.fail_pipeline:
        raise GateFailedError(
            f"{cfg.model_name}: validation gate failed: " + "; ".join(report.reasons())
        )
    return report
