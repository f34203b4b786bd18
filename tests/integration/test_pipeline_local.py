"""The whole training pipeline (compiled YAML, kfp.local) with real Feast, DVC and MLflow."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from kfp import compiler, local

from mlplatform.config import PlatformConfig, load_config
from mlplatform.core.training import split_frame
from mlplatform.errors import PipelineRunError
from mlplatform.orchestration.runner import quiet_local_runner, run_local
from mlplatform.registry.mlflow_registry import CHALLENGER, CHAMPION, Registry, lineage_document
from mlplatform.stages import generate_data
from mlplatform.stages.register import reference_sample
from mlplatform.versioning import data_version

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _config(tmp: Path, **gate: object) -> PlatformConfig:
    (tmp / "feature_repo").mkdir(exist_ok=True)
    shutil.copy(ROOT / "feature_repo/feature_store.yaml", tmp / "feature_repo")
    return load_config(ROOT / "configs/credit-risk.yaml", env={}).with_overrides(
        artifacts_dir=str(tmp / "artifacts"),  # type: ignore[arg-type]
        data={"rows": 1000, "data_dir": str(tmp / "data")},
        train={"epochs": 400},
        explain={"sample_rows": 8, "num_samples": 1000, "coverage_samples": 2000},
        registry={"tracking_uri": f"sqlite:///{tmp}/mlflow.db", "artifact_root": str(tmp / "ml")},
        feature_store={"repo_dir": str(tmp / "feature_repo")},
        gate=gate,
    )


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("pipeline")
    generate_data(_config(tmp))
    return tmp


def test_run_registers_with_lineage_then_reproduces(workspace: Path) -> None:
    cfg = _config(workspace)
    pipeline = ROOT / "pipelines/training_pipeline.yaml"
    first = run_local(cfg, pipeline, base=ROOT)
    assert first.version == "1" and first.gate["passed"]
    assert (first.run_dir / "train-gd" / "loss_curve").read_text().startswith("<img")
    reg = Registry(cfg.registry)
    doc = lineage_document(reg, "credit-risk")
    champion = doc["aliases"][CHAMPION]
    assert champion["version"] == doc["aliases"][CHALLENGER]["version"] == "1"
    assert champion["data_version"] == data_version(workspace / "data/credit-risk.parquet")
    assert champion["feature_service"] == "credit-risk"
    assert champion["pipeline_run"].startswith("mlplatform-training-")
    assert champion["validation"]["passed"] is True
    assert champion["trigger"] == "manual"
    assert len(champion["git_commit"]) >= 40
    train = split_frame(cfg, pd.read_parquet(workspace / "data/credit-risk.parquet")).train
    reference = reg.reference("credit-risk", CHAMPION)  # the register task logged it
    pd.testing.assert_frame_equal(reference, reference_sample(cfg, train))

    second = run_local(cfg, pipeline, base=ROOT)  # unchanged data: same model, same metrics
    assert second.version == "2"
    m1 = reg.run_metrics(reg.version("credit-risk", "1").run_id)
    m2 = reg.run_metrics(reg.version("credit-risk", "2").run_id)
    assert m1 == m2
    assert reg.by_alias("credit-risk", CHAMPION).version == "1"  # type: ignore[union-attr]
    assert reg.by_alias("credit-risk", CHALLENGER).version == "2"  # type: ignore[union-attr]


def test_failing_gate_fails_the_run_and_leaves_the_registry_unchanged(workspace: Path) -> None:
    cfg = _config(workspace, min_auc=0.999)
    reg = Registry(cfg.registry)
    before = [(v.version, v.aliases) for v in reg.versions("credit-risk")]
    with pytest.raises(
        PipelineRunError, match=r"gate failed: roc_auc = 0\.\d+ \(needs >= 0\.999\)"
    ) as failed:
        run_local(cfg, ROOT / "pipelines/training_pipeline.yaml", base=ROOT)
    assert [(v.version, v.aliases) for v in reg.versions("credit-risk")] == before
    message = str(failed.value)  # kfp.local colours its words; the line we print is plain
    assert "FAILURE" in message and "\x1b" not in message, message


def test_extend_example_reuses_components_and_adds_a_check(workspace: Path) -> None:
    """The README's "Extend the platform" example, run as written."""
    from pipelines.extended_pipeline import extended_pipeline

    compiler.Compiler().compile(extended_pipeline, str(workspace / "extended.yaml"))
    from mlplatform.orchestration.runner import absolute

    cfg = absolute(_config(workspace), ROOT)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(workspace / "ext"))
    with quiet_local_runner():
        extended_pipeline(config_json=cfg.to_json(), min_rows=100)
        with pytest.raises(RuntimeError, match="data-quality"):
            extended_pipeline(config_json=cfg.to_json(), min_rows=10**9)
