"""The CLI through typer's CliRunner: help everywhere, readable errors, real outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlplatform.cli import app

runner = CliRunner()
COMMANDS = [
    "data",
    "train",
    "compare-losses",
    "predict",
    "demo",
    "explain",
    "lineage",
    "pipeline",
    "serve",
    "features",
]
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("command", [[], *([c] for c in COMMANDS)])
def test_every_command_has_help(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_train_article_example_prints_theta() -> None:
    result = runner.invoke(app, ["train", "--example", "article"])
    assert result.exit_code == 0, result.output
    assert "w = 1.352437" in result.output
    assert "b = -0.283301" in result.output


def _small_config(tmp_path: Path) -> Path:
    text = (ROOT / "configs/credit-risk.yaml").read_text()
    text = text.replace("rows: 5000", "rows: 400").replace("epochs: 3000", "epochs: 200")
    text += f"artifacts_dir: {tmp_path / 'artifacts'}\n"
    text = text.replace("  seed: 7", f"  seed: 7\n  data_dir: {tmp_path / 'data'}")
    path = tmp_path / "credit-risk.yaml"
    path.write_text(text)
    return path


def test_data_train_predict_round_trip(tmp_path: Path) -> None:
    cfg = _small_config(tmp_path)
    assert runner.invoke(app, ["data", "--config", str(cfg)]).exit_code == 0
    result = runner.invoke(app, ["train", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "artifacts/credit-risk"
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.5 < metrics["metrics"]["test"]["roc_auc"] <= 1.0
    assert (out / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"
    row = json.dumps([40, 20_000_000, 0.2, 0, 5])
    result = runner.invoke(app, ["predict", "--model", str(out / "model.json"), "--row", row])
    assert result.exit_code == 0, result.output
    assert 0.0 < json.loads(result.output)["prediction"] < 1.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--config", "nope.yaml"], "config file not found"),
        (["train", "--example", "nope"], "unknown example"),
        (
            ["train", "--config", "configs/house-price.yaml", "--data", "missing.parquet"],
            "no data at",
        ),
        (["predict", "--model", "missing.json", "--row", "[]"], "train one first"),
    ],
)
def test_errors_are_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_bad_row_and_diverging_learning_rate_exit_2(tmp_path: Path) -> None:
    cfg = _small_config(tmp_path)
    runner.invoke(app, ["data", "--config", str(cfg)])
    runner.invoke(app, ["train", "--config", str(cfg)])
    model = tmp_path / "artifacts/credit-risk/model.json"
    bad = runner.invoke(app, ["predict", "--model", str(model), "--row", "{not json"])
    assert bad.exit_code == 2 and "not valid JSON" in bad.output
    cfg.write_text(cfg.read_text().replace("learning_rate: 2.0", "learning_rate: 900"))
    diverged = runner.invoke(app, ["train", "--config", str(cfg)])
    assert diverged.exit_code == 2
    assert "smaller learning rate" in diverged.output


def test_console_script_reports_errors_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_name: x\ntask: regression\n")
    proc = subprocess.run(
        [sys.executable, "-m", "mlplatform.cli", "train", "--config", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "entity: Field required" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_compare_losses_writes_table_and_plot(tmp_path: Path) -> None:
    result = runner.invoke(app, ["compare-losses", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "loss_comparison.json").read_text())
    assert {r["loss"] for r in rows} == {"mse", "mae", "huber"}
    assert (tmp_path / "loss_comparison.png").stat().st_size > 10_000
