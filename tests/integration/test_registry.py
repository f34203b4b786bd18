"""The real MLflow (SQLite backend, local artifacts) in a temporary directory."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from mlplatform.config import RegistryConfig, load_config
from mlplatform.core.training import split_frame
from mlplatform.errors import ModelVersionNotFoundError, ReferenceNotFoundError
from mlplatform.registry.mlflow_registry import (
    CHALLENGER,
    CHAMPION,
    Registry,
    lineage_document,
)
from mlplatform.stages import generate_data, train_job
from mlplatform.stages.register import reference_sample


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("reg")
    cfg = load_config("configs/credit-risk.yaml", env={}).with_overrides(
        data={"rows": 400, "data_dir": str(tmp / "data")},
        train={"epochs": 100},
        artifacts_dir=str(tmp / "artifacts"),  # type: ignore[arg-type]
    )
    data = generate_data(cfg)
    return train_job(cfg, data).files["model"], data


def test_register_alias_load_and_lineage(tmp_path: Path, trained: tuple[Path, Path]) -> None:
    model_path, data = trained
    reg = Registry(
        RegistryConfig(
            tracking_uri=f"sqlite:///{tmp_path}/m.db", artifact_root=str(tmp_path / "art")
        )
    )
    gate = {"passed": True, "checks": []}
    v1 = reg.log_and_register(
        model_path,
        {"lr": 2.0},
        {"roc_auc": 0.8},
        [],
        {"data_md5": "aaa", "validation": json.dumps(gate)},
    )
    v2 = reg.log_and_register(
        model_path,
        {"lr": 2.0},
        {"roc_auc": 0.81},
        [],
        {"data_md5": "bbb", "validation": json.dumps(gate)},
    )
    assert (v1.version, v2.version) == ("1", "2")
    reg.set_alias("credit-risk", CHAMPION, v1.version, "first model")
    reg.set_alias("credit-risk", CHALLENGER, v2.version)
    assert reg.by_alias("credit-risk", CHAMPION).version == "1"  # type: ignore[union-attr]
    model = reg.load("credit-risk", CHALLENGER)
    rows = pd.read_parquet(data).head(5)
    assert ((model.predict(rows) >= 0) & (model.predict(rows) <= 1)).all()
    doc = lineage_document(reg, "credit-risk")
    assert doc["aliases"][CHAMPION]["data_version"] == "aaa"
    assert doc["aliases"][CHALLENGER]["data_version"] == "bbb"
    assert doc["aliases"][CHAMPION]["alias_reason"] == "first model"
    assert doc["aliases"][CHAMPION]["validation"] == gate
    assert reg.run_metrics(v2.run_id)["roc_auc"] == 0.81


def test_reference_travels_with_the_version(tmp_path: Path, trained: tuple[Path, Path]) -> None:
    """The drift reference logged with a version is read back by alias; a version registered
    without one, or an alias no version holds, is a clear error."""
    model_path, data = trained
    cfg = load_config("configs/credit-risk.yaml", env={}).with_overrides(
        explain={"background_rows": 50},
        registry={"tracking_uri": f"sqlite:///{tmp_path}/m.db", "artifact_root": str(tmp_path)},
    )
    train = split_frame(cfg, pd.read_parquet(data)).train
    sample = reference_sample(cfg, train)
    assert list(sample.columns) == [*cfg.feature_names, cfg.target] and len(sample) == 50
    assert sample.equals(reference_sample(cfg, train))  # seeded: the same rows every time
    reg = Registry(cfg.registry)
    v1 = reg.log_and_register(model_path, {}, {}, [], {}, reference=sample).version
    v2 = reg.log_and_register(model_path, {}, {}, [], {}).version
    reg.set_alias("credit-risk", CHAMPION, v1)
    reg.set_alias("credit-risk", CHALLENGER, v2)
    pd.testing.assert_frame_equal(reg.reference("credit-risk", CHAMPION), sample)
    with pytest.raises(ReferenceNotFoundError, match=r"'credit-risk' version 2 has no drift"):
        reg.reference("credit-risk", CHALLENGER)
    with pytest.raises(ModelVersionNotFoundError, match="no version with alias 'champion'"):
        reg.reference("nope", CHAMPION)


def test_unknown_alias_and_version_are_clear_errors(tmp_path: Path) -> None:
    reg = Registry(
        RegistryConfig(
            tracking_uri=f"sqlite:///{tmp_path}/m.db", artifact_root=str(tmp_path / "art")
        )
    )
    assert reg.by_alias("nope", CHAMPION) is None
    with pytest.raises(ModelVersionNotFoundError, match="no version with alias 'champion'"):
        reg.load("nope", CHAMPION)
    with pytest.raises(ModelVersionNotFoundError, match="has no version 9"):
        reg.version("nope", "9")


def test_rollout_watch_rolls_out_each_new_challenger_once(
    tmp_path: Path, trained: tuple[Path, Path]
) -> None:
    from mlplatform.serving.rollout import pending_challenger, watch

    model_path, _ = trained
    cfg = load_config("configs/credit-risk.yaml", env={}).with_overrides(
        registry={"tracking_uri": f"sqlite:///{tmp_path}/m.db", "artifact_root": str(tmp_path)}
    )
    reg = Registry(cfg.registry)
    v1 = reg.log_and_register(model_path, {}, {}, [], {}).version
    reg.set_alias("credit-risk", CHAMPION, v1)
    assert pending_challenger(cfg) is None
    v2 = reg.log_and_register(model_path, {}, {}, [], {}).version
    reg.set_alias("credit-risk", CHALLENGER, v2)
    assert pending_challenger(cfg) == v2
    calls: list[int] = []

    def run_once() -> None:  # what a rollback leaves behind: the tag, then no alias
        calls.append(1)
        reg.client.set_model_version_tag("credit-risk", v2, "rollback.at", "now")
        if len(calls) == 2:
            reg.delete_alias("credit-risk", CHALLENGER)

    # the first attempt died after tagging: the alias is still there, so the next tick
    # runs again (to finish the rollback); after that nothing is pending
    ticks = iter([False, False, False, True])
    watch(cfg, run_once, interval=0, stop=lambda: next(ticks))
    assert calls == [1, 1] and pending_challenger(cfg) is None


def test_rollout_watch_waits_until_the_canary_serves_the_challenger(
    tmp_path: Path, trained: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """A pipeline run registers the challenger minutes before `make canary` deploys it: the
    controller must not step (and then roll back) a canary that is not there yet."""
    from mlplatform.serving.rollout import watch

    model_path, _ = trained
    cfg = load_config("configs/credit-risk.yaml", env={}).with_overrides(
        registry={"tracking_uri": f"sqlite:///{tmp_path}/m.db", "artifact_root": str(tmp_path)}
    )
    reg = Registry(cfg.registry)
    reg.set_alias("credit-risk", CHAMPION, reg.log_and_register(model_path, {}, {}, [], {}).version)
    v2 = reg.log_and_register(model_path, {}, {}, [], {}).version
    reg.set_alias("credit-risk", CHALLENGER, v2)
    deployed_after = 3  # polls before the canary revision is ready
    polls: list[str] = []

    def served(version: str) -> bool:
        polls.append(version)
        return len(polls) > deployed_after

    calls: list[int] = []
    ticks = iter([False] * 5 + [True])
    watch(
        cfg, lambda: calls.append(len(polls)), interval=0, stop=lambda: next(ticks), served=served
    )
    assert calls == [4, 5]  # rolled out only once served (and again while still pending)
    assert capsys.readouterr().out.count(f"challenger v{v2} registered, waiting") == 1
