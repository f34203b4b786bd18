"""`mlplatform pipeline run --pipeline X` runs only a compiled training pipeline: any other file
(the README's extended pipeline, YAML that is no pipeline, not YAML at all) is one line on
stderr and exit code 2, before anything runs, never a traceback; and the extended pipeline
has its own local run (`make pipeline-extended`)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from kfp import compiler
from typer.testing import CliRunner

from mlplatform.cli import app
from mlplatform.errors import PipelineRunError
from mlplatform.orchestration.runner import training_pipeline

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def extended_yaml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pipelines.extended_pipeline import extended_pipeline

    out = tmp_path_factory.mktemp("extended") / "extended_pipeline.yaml"
    compiler.Compiler().compile(extended_pipeline, str(out))
    return out


def test_the_extended_pipeline_is_refused_with_what_to_run_instead(
    extended_yaml: Path, tmp_path: Path
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "house-price.parquet").touch()  # present: the CLI generates none
    env = {
        "MLPLATFORM__ARTIFACTS_DIR": str(tmp_path / "artifacts"),
        "MLPLATFORM__DATA__DATA_DIR": str(tmp_path / "data"),
    }
    args = ["pipeline", "run", "--config", str(ROOT / "configs/house-price.yaml")]
    result = CliRunner().invoke(app, [*args, "--pipeline", str(extended_yaml)], env=env)
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    (line,) = result.output.splitlines()  # the error alone: no task ran, no log to point at
    assert line.startswith("error: ")
    assert "is not the training pipeline (its inputs: config_json, min_rows;" in line
    assert "`make pipeline-extended`" in line
    assert not (tmp_path / "artifacts" / "pipeline-runs").exists()  # nothing ran


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("hello: [", "is not a compiled KFP pipeline"),  # not YAML
        ("a: 1\n", "is not a compiled KFP pipeline"),  # YAML, no pipeline
        ("- 1\n", "is not a compiled KFP pipeline"),
        ("\xff", "is not a compiled KFP pipeline"),  # not UTF-8 (written as latin-1 below)
    ],
)
def test_a_file_that_is_no_pipeline_is_a_platform_error(
    tmp_path: Path, text: str, why: str
) -> None:
    path = tmp_path / "x.yaml"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(PipelineRunError, match=re.escape(why)):
        training_pipeline(path)


def test_the_committed_training_pipeline_is_accepted() -> None:
    pipe = training_pipeline(ROOT / "pipelines/training_pipeline.yaml")
    assert {"config_json", "git_commit", "trigger"} <= set(pipe.component_spec.inputs)


def test_the_extended_pipeline_has_its_own_local_run() -> None:
    """`make pipeline-extended` runs the module with --run (the run itself is exercised by
    tests/integration/test_pipeline_local.py's extend test; this checks the wiring)."""
    from pipelines.extended_pipeline import main

    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^pipeline-extended: .*## ", makefile, re.M)
    assert "-m pipelines.extended_pipeline --run" in makefile
    with pytest.raises(SystemExit) as exc:
        main(["--min-rows", "not-a-number"])
    assert exc.value.code == 2


def test_a_failed_extended_run_names_the_error_its_task_raised() -> None:
    """The reason comes from the run's own log lines (kfp.local colours them)."""
    from pipelines.extended_pipeline import failure_reason

    log = (
        "\x1b[96m'data-quality'\x1b[0m\n"
        "        raise ValueError(\n"
        "    ValueError: data quality: 10 rows (need ≥ 100), missing share 0.000 (allowed ≤ 0.01)\n"
        "\x1b[91mFAILURE\x1b[0m\n"
    )
    assert (
        failure_reason(log)
        == ": data quality: 10 rows (need ≥ 100), missing share 0.000 (allowed ≤ 0.01)"
    )
    assert failure_reason("Task finished with status SUCCESS\n") == ""
