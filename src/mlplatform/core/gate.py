"""The validation gate: may a candidate model replace the current champion?

Checks, in order: absolute thresholds on the test metrics (RMSE/R² or AUC/F1), on
explanation quality (LIME fidelity, anchor precision), then the champion
comparison on the primary metric (RMSE for regression, lower is better; ROC AUC
for classification, higher is better) with a relative margin:

    regression:      rmse_candidate ≤ rmse_champion · (1 − margin)
    classification:  auc_candidate  ≥ auc_champion  · (1 + margin)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from mlplatform.config import GateConfig

Task = Literal["regression", "classification"]


@dataclass(frozen=True)
class Check:
    name: str
    value: float | None
    threshold: float
    op: Literal["<=", ">="]
    passed: bool

    def describe(self) -> str:
        shown = "missing" if self.value is None else f"{self.value:.4g}"
        verdict = "ok" if self.passed else "FAILED"
        return f"{self.name} = {shown} (needs {self.op} {self.threshold:.4g}): {verdict}"


@dataclass(frozen=True)
class GateReport:
    passed: bool
    checks: tuple[Check, ...]
    primary_metric: str
    champion_version: str | None

    def reasons(self) -> list[str]:
        return [c.describe() for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "primary_metric": self.primary_metric,
            "champion_version": self.champion_version,
            "checks": [asdict(c) for c in self.checks],
        }

    def summary(self) -> str:
        head = "PASSED" if self.passed else "FAILED"
        return f"gate {head}: " + "; ".join(c.describe() for c in self.checks)


def primary_metric(task: Task) -> tuple[str, Literal["<=", ">="]]:
    return ("rmse", "<=") if task == "regression" else ("roc_auc", ">=")


def _check(name: str, value: float | None, threshold: float, op: Literal["<=", ">="]) -> Check:
    ok = value is not None and (value <= threshold if op == "<=" else value >= threshold)
    return Check(name, value, threshold, op, ok)


def _thresholds(task: Task, cfg: GateConfig) -> list[tuple[str, float | None, str]]:
    if task == "regression":
        return [("rmse", cfg.max_rmse, "<="), ("r2", cfg.min_r2, ">=")]
    return [("roc_auc", cfg.min_auc, ">="), ("f1", cfg.min_f1, ">=")]


def evaluate_gate(
    task: Task,
    metrics: dict[str, float],
    cfg: GateConfig,
    champion: dict[str, float] | None = None,
    champion_version: str | None = None,
) -> GateReport:
    """Every configured check on the candidate's ``metrics`` (test split + explanation quality)."""
    checks: list[Check] = []
    explain = [
        ("lime_fidelity_r2_mean", cfg.min_lime_fidelity_r2, ">="),
        ("anchor_precision_mean", cfg.min_anchor_precision, ">="),
    ]
    for name, limit, op in [*_thresholds(task, cfg), *explain]:
        if limit is not None:
            checks.append(_check(name, metrics.get(name), limit, op))  # type: ignore[arg-type]
    metric, op = primary_metric(task)
    if champion is not None and metric in champion:
        factor = 1 - cfg.champion_margin if op == "<=" else 1 + cfg.champion_margin
        bound = champion[metric] * factor
        checks.append(
            _check(f"{metric} vs champion v{champion_version}", metrics.get(metric), bound, op)
        )
    passed = all(c.passed for c in checks)
    return GateReport(passed, tuple(checks), metric, champion_version)
