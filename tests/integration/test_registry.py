"""The real MLflow (SQLite backend, local artifacts) in a temporary directory."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
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

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("reg")
    cfg = load_config(ROOT / "configs/credit-risk.yaml", env={}).with_overrides(
        data={"rows": 400, "data_dir": str(tmp / "data")},
        train={"epochs": 100},
        artifacts_dir=str(tmp / "artifacts"),  # type: ignore[arg-type]
    )
    data = generate_data(cfg)
    return train_job(cfg, data).files["model"], data


def _by_hand(model_json: dict, rows: pd.DataFrame) -> np.ndarray:
    """P(approved) from the saved ``model.json`` alone: min-max scale each numeric feature with
    the stored offset and scale, then σ(x' · w + b) (credit-risk has no categorical feature)."""
    scaler = model_json["scaler"]
    assert scaler["method"] == "minmax" and scaler["categorical"] == []
    x = rows[scaler["numeric"]].to_numpy(dtype=float)
    scaled = (x - np.array(scaler["offset"])) / np.array(scaler["scale"])
    z = scaled @ np.array(model_json["weights"]) + model_json["bias"]
    return 1.0 / (1.0 + np.exp(-z))


def _registry(tmp_path: Path) -> Registry:
    return Registry(
        RegistryConfig(
            tracking_uri=f"sqlite:///{tmp_path}/m.db", artifact_root=str(tmp_path / "art")
        )
    )


def test_register_alias_load_and_lineage(
    tmp_path: Path, trained: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    model_path, data = trained
    reg = _registry(tmp_path)
    gate = {"passed": True, "checks": []}
    monkeypatch.setenv("MLPLATFORM_ACTOR", "ci-pipeline")
    before = datetime.now(UTC).replace(microsecond=0)
    v1 = reg.log_and_register(
        model_path,
        {"lr": 2.0},
        {"roc_auc": 0.8},
        [],
        {"data_md5": "aaa", "validation": json.dumps(gate), "git_commit": "abc123"},
    )
    v2 = reg.log_and_register(
        model_path,
        {"lr": 2.0},
        {"roc_auc": 0.81},
        [],
        {"data_md5": "bbb", "validation": json.dumps(gate)},
    )
    assert (v1.version, v2.version) == ("1", "2")
    monkeypatch.setenv("MLPLATFORM_ACTOR", "on-call-alice")  # who deploys is recorded apart
    reg.set_alias("credit-risk", CHAMPION, v1.version, "first model")
    reg.set_alias("credit-risk", CHALLENGER, v2.version)
    after = datetime.now(UTC)
    assert reg.by_alias("credit-risk", CHAMPION).aliases == (CHAMPION,)  # type: ignore[union-attr]

    saved = json.loads(model_path.read_text())
    rows = pd.read_parquet(data).head(50)
    for alias in (CHAMPION, CHALLENGER):
        model = reg.load("credit-risk", alias)
        assert model.to_dict() == saved  # the registered artefact is the saved model, exactly
        np.testing.assert_allclose(model.predict(rows), _by_hand(saved, rows), rtol=1e-12)

    doc = lineage_document(reg, "credit-risk")
    assert set(doc["aliases"]) == {CHAMPION, CHALLENGER}
    champion, challenger = doc["aliases"][CHAMPION], doc["aliases"][CHALLENGER]
    unwritten = ("data_path", "pipeline_run", "trigger", "feature_service", "config_hash")
    assert {k: champion[k] for k in ("version", "run_id", *unwritten)} == {
        "version": "1",
        "run_id": v1.run_id,
        **dict.fromkeys(unwritten),
    }
    assert (champion["data_version"], champion["git_commit"]) == ("aaa", "abc123")
    assert (challenger["version"], challenger["run_id"]) == ("2", v2.run_id)
    assert (challenger["data_version"], challenger["git_commit"]) == ("bbb", None)
    assert champion["validation"] == challenger["validation"] == gate
    assert (champion["alias_reason"], challenger["alias_reason"]) == ("first model", None)
    for entry in (champion, challenger):
        assert entry["registered_by"] == "ci-pipeline" and entry["alias_set_by"] == "on-call-alice"
        for key in ("registered_at", "alias_set_at"):
            assert before <= datetime.fromisoformat(entry[key]) <= after, key
    assert reg.run_metrics(v2.run_id)["roc_auc"] == 0.81


def test_actor_defaults_to_the_login_name_and_shows_in_lineage(
    tmp_path: Path, trained: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """README: "registered by / at" in `mlplatform lineage`; MLPLATFORM_ACTOR names who acts,
    otherwise the login name."""
    from typer.testing import CliRunner

    from mlplatform.cli import app

    monkeypatch.delenv("MLPLATFORM_ACTOR", raising=False)
    monkeypatch.setenv("LOGNAME", "login-bob")  # what getpass reads first
    reg = _registry(tmp_path)
    version = reg.log_and_register(trained[0], {}, {}, [], {}).version
    monkeypatch.setenv("MLPLATFORM_ACTOR", "")  # empty: still the login name
    why = "manual promotion: " + "the canary's figures were fine; " * 3  # 113 characters
    reg.set_alias("credit-risk", CHAMPION, version, why)
    monkeypatch.setenv("MLPLATFORM__REGISTRY__TRACKING_URI", reg.cfg.tracking_uri)
    config = ["--config", str(ROOT / "configs/credit-risk.yaml")]
    out = CliRunner().invoke(app, ["lineage", "credit-risk", *config, "--json"])
    assert out.exit_code == 0, out.output
    champion = json.loads(out.output)["aliases"][CHAMPION]
    assert (champion["registered_by"], champion["alias_set_by"]) == ("login-bob", "login-bob")
    monkeypatch.delenv("COLUMNS", raising=False)  # a pipe: rich would assume 80 columns
    table = CliRunner().invoke(app, ["lineage", "credit-risk", *config])
    assert table.exit_code == 0, table.output
    (line,) = [ln for ln in table.output.splitlines() if "registered by" in ln]
    assert "login-bob" in line
    (line,) = [ln for ln in table.output.splitlines() if ln.lstrip("│ ").startswith("why")]
    assert why.strip() in line  # a long value is not folded onto several lines


def test_reference_travels_with_the_version(tmp_path: Path, trained: tuple[Path, Path]) -> None:
    """The drift reference logged with a version is read back by alias; a version registered
    without one, or an alias no version holds, is a clear error."""
    model_path, data = trained
    cfg = load_config(ROOT / "configs/credit-risk.yaml", env={}).with_overrides(
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
    reg = _registry(tmp_path)
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
    cfg = load_config(ROOT / "configs/credit-risk.yaml", env={}).with_overrides(
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
    cfg = load_config(ROOT / "configs/credit-risk.yaml", env={}).with_overrides(
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


TWO_REGISTRIES = r"""
import json, os, sys
from pathlib import Path
import mlflow
from mlflow import MlflowClient
from mlplatform.config import RegistryConfig
from mlplatform.registry.mlflow_registry import CHAMPION, Registry

model, tmp = Path(sys.argv[1]), Path(sys.argv[2])
uri = {k: f"sqlite:///{tmp}/{k}.db" for k in "ab"}
a, b = (Registry(RegistryConfig(tracking_uri=uri[k], artifact_root=str(tmp / k))) for k in "ab")
version = a.log_and_register(model, {}, {}, [], {}).version
a.set_alias("credit-risk", CHAMPION, version)
loaded = a.load("credit-risk", CHAMPION)
print(json.dumps({
    "env": {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")},
    "tracking": mlflow.get_tracking_uri(),
    "registry": mlflow.get_registry_uri(),
    "a_models": [m.name for m in MlflowClient(tracking_uri=uri["a"]).search_registered_models()],
    "b_models": [m.name for m in MlflowClient(tracking_uri=uri["b"]).search_registered_models()],
    "loaded": loaded.name,
}))
"""


def test_a_registry_leaves_no_process_wide_uri_behind(
    tmp_path: Path, trained: tuple[Path, Path]
) -> None:
    """Two registries in one process, then a plain MlflowClient naming only a tracking URI
    (MLflow takes its registry URI from the process-wide one): it sees its own store's
    models. Before, every Registry() set both URIs process-wide and exported them to child
    processes, so the client of store a read store b's registry (the rehearsal story's
    'refused port-forward')."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PYTHONPATH"] = str(ROOT / "src")
    proc = subprocess.run(
        [sys.executable, "-c", TWO_REGISTRIES, str(trained[0]), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["env"] == {"MLFLOW_TRACKING_URI": None, "MLFLOW_REGISTRY_URI": None}
    assert str(tmp_path) not in out["tracking"] + out["registry"]  # MLflow's own defaults
    assert out["a_models"] == ["credit-risk"] and out["b_models"] == []
    assert out["loaded"] == "credit-risk"  # the models:/ download found store a's alias
