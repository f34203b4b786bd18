"""`mlplatform explain` end to end on a small trained credit model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlplatform.cli import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("explain")
    text = (ROOT / "configs/credit-risk.yaml").read_text()
    text = text.replace("rows: 5000", "rows: 600").replace("epochs: 3000", "epochs: 300")
    text = text.replace("  seed: 7", f"  seed: 7\n  data_dir: {tmp / 'data'}")
    text += f"artifacts_dir: {tmp / 'artifacts'}\n"
    path = tmp / "credit-risk.yaml"
    path.write_text(text)
    assert runner.invoke(app, ["train", "--config", str(path)]).exit_code == 0
    return path


def test_explain_entity_prints_contributions_rule_quality_and_writes_reports(cfg: Path) -> None:
    result = runner.invoke(app, ["explain", "--config", str(cfg), "--entity-id", "5"])
    assert result.exit_code == 0, result.output
    assert "LIME g(x)" in result.output
    assert "compared with the average applicant" in result.output and "Slopes β" in result.output
    assert "→ reject" in result.output or "→ approve" in result.output
    assert "lime_fidelity_r2" in result.output and "anchor_precision" in result.output
    out = cfg.parent / "artifacts/credit-risk/explanations"
    assert (out / "applicant_id-5_contributions.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "applicant_id-5_slopes.png").read_bytes()[:4] == b"\x89PNG"
    html = (out / "applicant_id-5.html").read_text()
    assert "<html" in html.lower() and "income_vnd" in html
    doc = json.loads((out / "applicant_id-5.json").read_text())
    assert {"lime", "anchor", "quality"} <= set(doc)


def test_explain_global_writes_model_report(cfg: Path) -> None:
    result = runner.invoke(app, ["explain", "--config", str(cfg), "--global"])
    assert result.exit_code == 0, result.output
    out = cfg.parent / "artifacts/credit-risk/explanations"
    quality = json.loads((out / "model_quality.json").read_text())
    assert quality["lime_fidelity_r2_mean"] > 0.5
    assert 0 < quality["global_tree_fidelity"] <= 1
    assert "global" in (out / "model_report.html").read_text().lower()
    assert "mean |contribution| (compared with the average applicant)" in result.output
    assert f"html   {out / 'model_report.html'}" in result.output  # says where the report went


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--row", "[40, 2e7, 0.2]"], "must list 5 features"),
        (["--row", "[40, 2e7, NaN, 0, 5]"], "missing or infinite"),
        (["--row", '{"age": 40}'], "missing features"),
        (["--row", "[40, 2e7"], "not valid JSON"),
        (["--entity-id", "999999"], "unknown applicant_id 999999"),
        ([], "exactly one of --row"),
        (["--model", "nowhere.json", "--entity-id", "1"], "train one first"),
    ],
)
def test_bad_inputs_exit_2_with_reason(cfg: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["explain", "--config", str(cfg), *args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
