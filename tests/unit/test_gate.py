from __future__ import annotations

import pytest

from mlplatform.config import GateConfig
from mlplatform.core.gate import evaluate_gate

GOOD_EXPLAIN = {"lime_fidelity_r2_mean": 0.9, "anchor_precision_mean": 0.96}


def test_regression_thresholds_and_champion_margin() -> None:
    cfg = GateConfig(min_r2=0.8, max_rmse=2.0, champion_margin=0.05)
    metrics = {"rmse": 1.0, "r2": 0.9, **GOOD_EXPLAIN}
    assert evaluate_gate("regression", metrics, cfg).passed
    # 5 % better than champion's 1.04 would need ≤ 0.988: 1.0 fails.
    report = evaluate_gate("regression", metrics, cfg, {"rmse": 1.04}, "3")
    assert not report.passed
    assert report.reasons() == ["rmse vs champion v3 = 1 (needs <= 0.988): FAILED"]
    assert evaluate_gate("regression", metrics, cfg, {"rmse": 1.2}, "3").passed


def test_classification_uses_auc_and_explanation_quality() -> None:
    cfg = GateConfig(min_auc=0.8, min_anchor_precision=0.95)
    bad = {"roc_auc": 0.85, "lime_fidelity_r2_mean": 0.9, "anchor_precision_mean": 0.9}
    report = evaluate_gate("classification", bad, cfg)
    assert not report.passed
    assert "anchor_precision_mean = 0.9 (needs >= 0.95): FAILED" in report.reasons()
    report = evaluate_gate(
        "classification", {"roc_auc": 0.85, **GOOD_EXPLAIN}, cfg, {"roc_auc": 0.8}, "1"
    )
    assert report.passed and report.to_dict()["champion_version"] == "1"


def test_missing_metric_fails_rather_than_passes() -> None:
    report = evaluate_gate("regression", {"rmse": 1.0}, GateConfig())
    assert not report.passed
    assert any("r2 = missing" in r for r in report.reasons())


@pytest.mark.parametrize("margin", [-0.1, 0.0, 0.1])
def test_margin_direction_for_auc(margin: float) -> None:
    cfg = GateConfig(
        min_auc=None, min_lime_fidelity_r2=None, min_anchor_precision=None, champion_margin=margin
    )
    passed = evaluate_gate("classification", {"roc_auc": 0.8}, cfg, {"roc_auc": 0.8}, "1").passed
    assert passed == (margin <= 0)
