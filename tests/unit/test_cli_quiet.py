"""Quiet by default: what libraries print, log and warn goes to a log file, not the terminal
(``--verbose`` shows it); no colour codes when the output is not a terminal; a progress bar that
ends where training ended; a config error blamed on the variable that caused it.

`pipeline run` runs in a real subprocess (pipes, not a terminal) with kfp.local and the MLflow
registry replaced by stand-ins that make the kinds of noise the real ones make: a logger whose
handler is made on stdout during the run (kfp.local), hundreds of printed task-log lines, a
library logger whose handler was made on stderr before the run, a warning, a tqdm bar, ANSI
colour codes. The real pipeline takes minutes; tests/integration/test_pipeline_local.py runs it.
"""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlplatform.cli import app
from mlplatform.reporting import console as console_mod

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()
MARKERS = ("EXECUTOR-JSON 599", "LIBRARY-LOG-LINE", "LIBRARY-WARNING", "TQDM-BAR", "SUCCESS")

STAND_INS = r"""
import logging, os, sys, warnings
from pathlib import Path
import mlplatform.orchestration.runner as runner
import mlplatform.registry.mlflow_registry as registry
from mlplatform.cli import app

library = logging.getLogger("some.library")  # its handler made at import, on the terminal
library.addHandler(logging.StreamHandler(sys.stderr))
library.propagate = False

def run_local(cfg, pipeline=None, base=None, trigger="manual", log=None):
    kfp = logging.getLogger("kfp-like")
    handler = logging.StreamHandler(sys.stdout)  # kfp.local: made per run, on stdout
    kfp.addHandler(handler)
    kfp.setLevel(logging.INFO)
    kfp.propagate = False
    kfp.info("Task \x1b[96m'train-gd'\x1b[0m finished with status \x1b[92mSUCCESS\x1b[0m")
    kfp.removeHandler(handler)
    for i in range(600):
        print(f"    EXECUTOR-JSON {i}")
    library.warning("LIBRARY-LOG-LINE")
    warnings.warn("LIBRARY-WARNING", FutureWarning)
    sys.stderr.write("100%|#####| 5/5 TQDM-BAR\n")
    check = {"name": "r2", "value": 0.95, "op": ">=", "threshold": 0.5}
    run_dir = Path(cfg.artifacts_dir) / "pipeline-runs" / "r1"
    return runner.PipelineRun(run_dir, {"passed": True, "checks": [check]}, "1")

class Registry:
    def __init__(self, cfg):
        pass

    def version(self, name, version):
        if os.environ.get("STAND_IN_CHALLENGER"):  # a later run, on the champion's data
            tags = {"lineage.data_md5": "d" * 32}
            return registry.VersionInfo(name, version, "run-id", ("challenger",), tags, "")
        aliases = ("champion", "challenger")  # the first validated version gets both
        return registry.VersionInfo(name, version, "run-id", aliases, {}, "")

    def by_alias(self, name, alias):
        assert alias == "champion"
        tags = {"lineage.data_md5": "d" * 32}
        return registry.VersionInfo(name, "7", "run-0", ("champion",), tags, "")

runner.run_local = run_local
registry.Registry = Registry
app(prog_name="mlplatform")
"""


def _pipeline_run(
    tmp: Path, *options: str, extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **(extra or {}),
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(ROOT / "src"),  # this checkout's code
        "MLPLATFORM__ARTIFACTS_DIR": str(tmp / "artifacts"),
        "MLPLATFORM__DATA__DATA_DIR": str(tmp / "data"),
        "MLPLATFORM__DATA__ROWS": "200",
    }
    args = [*options, "pipeline", "run", "--config", str(ROOT / "configs/house-price.yaml")]
    return subprocess.run(
        [sys.executable, "-c", STAND_INS, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def quiet(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    tmp = tmp_path_factory.mktemp("quiet")
    return tmp, _pipeline_run(tmp)


def test_pipeline_run_prints_the_summary_only(
    quiet: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    tmp, proc = quiet
    assert proc.returncode == 0, proc.stderr
    log = tmp / "artifacts/logs/pipelines.log"
    assert proc.stdout.splitlines() == [
        f"task and library logs → {log} (--verbose shows them here)",
        "gate: passed",
        "  r2 = 0.95 (needs >= 0.5)",
        "registered house-price version 1: aliases challenger and champion (there was no "
        "champion yet)",
        f"artifacts: {tmp / 'artifacts/pipeline-runs/r1'}",
        "next: `mlplatform features materialize --config "
        f"{ROOT / 'configs/house-price.yaml'}`, then `mlplatform serve --config "
        f"{ROOT / 'configs/house-price.yaml'}`",
    ]
    assert proc.stderr == ""


def test_a_challenger_on_the_champions_data_is_flagged_and_rollout_comes_next(
    tmp_path: Path,
) -> None:
    proc = _pipeline_run(tmp_path, extra={"STAND_IN_CHALLENGER": "1"})
    assert proc.returncode == 0, proc.stderr
    config = ROOT / "configs/house-price.yaml"
    assert proc.stdout.splitlines()[-4:] == [
        "registered house-price version 1: aliases challenger",
        f"artifacts: {tmp_path / 'artifacts/pipeline-runs/r1'}",
        f"note: data version {'d' * 32} is the one champion v7 was trained on: it can only tie "
        "(new data: `mlplatform data --shift 1.0`)",
        f"next: `mlplatform rollout --config {config}` canaries it (a running `mlplatform "
        "serve` attaches it by itself)",
    ]


def test_library_output_lands_in_the_log_file(
    quiet: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    tmp, _ = quiet
    text = (tmp / "artifacts/logs/pipelines.log").read_text(encoding="utf-8")
    for marker in MARKERS:
        assert marker in text
    # kfp.local colours task names and states whatever the stream: the file gets plain text
    assert "Task 'train-gd' finished with status SUCCESS" in text
    assert "\x1b" not in text


def test_verbose_shows_library_output_and_writes_no_log(tmp_path: Path) -> None:
    proc = _pipeline_run(tmp_path, "--verbose")
    assert proc.returncode == 0, proc.stderr
    for marker in MARKERS:
        assert marker in proc.stdout + proc.stderr
    assert "registered house-price version 1" in proc.stdout
    assert not (tmp_path / "artifacts/logs/pipelines.log").exists()
    # shown on a pipe, the library's colour codes are dropped, its words kept
    assert "Task 'train-gd' finished with status SUCCESS" in proc.stdout
    assert "\x1b" not in proc.stdout + proc.stderr


def test_the_local_runner_writes_task_logs_as_plain_text(tmp_path: Path) -> None:
    from mlplatform.orchestration.runner import _output

    log = tmp_path / "logs/pipelines.log"
    with _output(log):
        print("Pipeline \x1b[95m'mlplatform-training'\x1b[0m finished with status \x1b[92mSUCCESS")
    assert log.read_text(encoding="utf-8") == (
        "Pipeline 'mlplatform-training' finished with status SUCCESS\n"
    )


def test_make_help_has_no_colour_codes_on_a_pipe() -> None:
    proc = subprocess.run(
        ["make", "--no-print-directory", "help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "  demo  " in proc.stdout and "Show this help" in proc.stdout
    assert "\x1b" not in proc.stdout


def test_no_colour_codes_when_not_a_terminal(
    quiet: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    _, proc = quiet
    assert "\x1b" not in proc.stdout + proc.stderr
    bad = tmp_path / "bad.yaml"  # the error line is red markup on a terminal
    bad.write_text("model_name: [\n")
    err = subprocess.run(
        [sys.executable, "-m", "mlplatform.cli", "train", "--config", str(bad)],
        capture_output=True,
        text=True,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT / "src")},
        timeout=120,
        check=False,
    )
    assert err.returncode == 2 and err.stderr.startswith("error: "), err.stderr
    assert "\x1b" not in err.stderr


def test_handlers_write_to_the_terminal_again_after_the_block(tmp_path: Path) -> None:
    """A library imported inside the block makes its handler on the redirected stream; once
    the log file is closed that handler must not be left writing to it."""
    logger = logging.getLogger("test_cli_quiet.late_import")
    logger.propagate = False
    try:
        with console_mod.library_output(tmp_path):
            logger.addHandler(logging.StreamHandler(sys.stderr))
            logger.warning("inside")
        (handler,) = logger.handlers
        assert isinstance(handler, logging.StreamHandler)
        assert handler.stream is sys.stderr
    finally:
        logger.handlers.clear()
    assert "inside" in (tmp_path / "logs/pipelines.log").read_text(encoding="utf-8")


def _render_progress(monkeypatch: pytest.MonkeyPatch, total: int, last: int) -> str:
    buf = io.StringIO()
    monkeypatch.setattr(console_mod.err_console, "_file", buf)
    with console_mod.epoch_progress("train house-price", total) as on_epoch:
        for epoch in range(last + 1):
            on_epoch(epoch, 1.0 / (epoch + 1), None)
    return buf.getvalue()


def test_progress_ends_at_the_epoch_early_stopping_chose(monkeypatch: pytest.MonkeyPatch) -> None:
    shown = _render_progress(monkeypatch, total=3000, last=1218)
    assert "train house-price: stopped early at epoch 1218 (of 3000)" in shown
    assert "1218/1218" in shown and "/3000" not in shown


def test_progress_of_a_full_run_ends_at_the_total(monkeypatch: pytest.MonkeyPatch) -> None:
    shown = _render_progress(monkeypatch, total=300, last=300)
    assert "300/300" in shown and "stopped early" not in shown


def _config_with(tmp_path: Path, line: str) -> Path:
    text = (ROOT / "configs/house-price.yaml").read_text(encoding="utf-8")
    path = tmp_path / "house-price.yaml"
    path.write_text(text.replace("  learning_rate: 0.5\n", line), encoding="utf-8")
    return path


def test_a_bad_environment_variable_is_named_not_the_file(tmp_path: Path) -> None:
    config = _config_with(tmp_path, "  learning_rate: 0.5\n")
    env = {"MLPLATFORM__TRAIN__LEARNING_RATE": "-1"}
    result = runner.invoke(app, ["train", "--config", str(config)], env=env)
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(
        "error: invalid configuration: environment variable MLPLATFORM__TRAIN__LEARNING_RATE: "
        "train.learning_rate: "
    ), line
    assert str(config) not in line


def test_the_same_mistake_in_the_file_blames_the_file(tmp_path: Path) -> None:
    config = _config_with(tmp_path, "  learning_rate: -1\n")
    env = {"MLPLATFORM__TRAIN__EPOCHS": "10"}  # a good variable elsewhere is not blamed
    result = runner.invoke(app, ["train", "--config", str(config)], env=env)
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: invalid configuration: {config}: train.learning_rate: "), line


def test_the_readme_sample_config_error_is_the_real_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README "Commands" quotes the error for house-price's config with a negative learning
    rate saved as configs/x.yaml; the CLI must print exactly that line."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"`(error: invalid configuration: configs/x\.yaml: [^`]+)`", readme)
    assert match, "README no longer quotes a config error for configs/x.yaml"
    (tmp_path / "configs").mkdir()
    _config_with(tmp_path, "  learning_rate: -1\n").rename(tmp_path / "configs/x.yaml")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["train", "--config", "configs/x.yaml"])
    assert result.exit_code == 2
    assert result.stderr.strip() == match.group(1)


def test_report_md_gets_html_reports_with_their_extension(tmp_path: Path) -> None:
    """KFP writes the explain report as ``explain/report``; REPORT.md links a ``.html`` copy."""
    from mlplatform.demo.report import _viewable

    kfp_html = tmp_path / "explain" / "report"
    kfp_html.parent.mkdir()
    kfp_html.write_text("<html>report</html>", encoding="utf-8")
    png = tmp_path / "model.png"
    png.write_bytes(b"\x89PNG")
    linked = _viewable(kfp_html)
    assert linked == tmp_path / "explain" / "report.html"
    assert linked.read_text(encoding="utf-8") == "<html>report</html>"
    assert _viewable(png) == png
