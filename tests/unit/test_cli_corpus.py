"""A corpus of broken inputs fed to the real CLI: each one is a single line on stderr naming the
problem and exit code 2, never a traceback.

Configs (``train --config``): the file is missing, a directory, not UTF-8, not YAML, a list, an
unknown key or a wrong type; an environment override is not YAML, names no section, or has the
wrong type. Model files (``predict --model``): not JSON, a list, keys missing, wrong shapes.
A valid config and a valid model file run through the same commands are the controls.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from mlplatform.cli import app
from mlplatform.config import load_config

ROOT = Path(__file__).resolve().parents[2]
BASE = (ROOT / "configs/house-price.yaml").read_text(encoding="utf-8")
runner = CliRunner()


def one_line_error(result: Result, *needles: str) -> str:
    """The error line of a failed command, checked: exit 2, one line, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    err = result.stderr.strip()
    assert "Traceback" not in result.output
    assert err.startswith("error: ") and "\n" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


# -- configs -----------------------------------------------------------------------------------
def _write(text: str | bytes) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        path = tmp / "config.yaml"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        return path

    return make


def _directory(tmp: Path) -> Path:
    (tmp / "configs.d").mkdir()
    return tmp / "configs.d"


CONFIG_FILES: dict[str, tuple[Callable[[Path], Path], list[str]]] = {
    "missing": (lambda tmp: tmp / "nope.yaml", ["config file not found", "nope.yaml"]),
    "directory": (_directory, ["configs.d", "is a directory"]),
    "not-utf8": (_write(BASE.encode() + b"# caf\xe9\n"), ["not UTF-8", "0xe9"]),
    "invalid-yaml": (_write("model_name: [unclosed\n"), ["not valid YAML", "line 2"]),
    "tab-indent": (_write("data:\n\tdataset: house\n"), ["not valid YAML", "line 2"]),
    "a-list": (_write("- model_name: x\n- task: y\n"), ["top level, got list"]),
    "empty": (_write(""), ["top level, got an empty document"]),
    "unknown-key": (_write(BASE + "colour: blue\n"), ["colour: Extra inputs are not permitted"]),
    "wrong-type": (
        _write(BASE.replace("epochs: 5000", "epochs: many")),
        ["train.epochs: Input should be a valid integer", "'many'"],
    ),
    "wrong-nested-type": (
        _write(BASE.replace("  rows: 5000", "  rows: [1, 2]")),
        ["data.rows: Input should be a valid integer"],
    ),
}


@pytest.mark.parametrize("case", CONFIG_FILES, ids=str)
def test_broken_config_file_is_one_line(case: str, tmp_path: Path) -> None:
    make, needles = CONFIG_FILES[case]
    result = runner.invoke(app, ["train", "--config", str(make(tmp_path))], env={})
    one_line_error(result, *needles)


ENV_OVERRIDES: dict[str, tuple[dict[str, str], list[str]]] = {
    "invalid-yaml": (
        {"MLPLATFORM__TRAIN__EPOCHS": "[1, 2"},
        ["MLPLATFORM__TRAIN__EPOCHS: not valid YAML"],
    ),
    "invalid-yaml-mapping": (
        {"MLPLATFORM__TRAIN__EPOCHS": "a: b: c"},
        ["MLPLATFORM__TRAIN__EPOCHS: not valid YAML", "column"],
    ),
    "unknown-section": (
        {"MLPLATFORM__NOPE__X": "1"},
        ["nope: Extra inputs are not permitted"],
    ),
    "unknown-field": (
        {"MLPLATFORM__TRAIN__LEARNIG_RATE": "0.1"},
        ["train.learnig_rate: Extra inputs are not permitted"],
    ),
    "wrong-type": (
        {"MLPLATFORM__TRAIN__EPOCHS": "many"},
        ["train.epochs: Input should be a valid integer"],
    ),
    # digits stay a string: the complaint is the md5 pattern, not the type
    "short-digit-version": (
        {"MLPLATFORM__DATA__VERSION": "12345"},
        ["data.version: String should match pattern", "'12345'"],
    ),
}


@pytest.mark.parametrize("case", ENV_OVERRIDES, ids=str)
def test_broken_env_override_is_one_line(case: str, tmp_path: Path) -> None:
    env, needles = ENV_OVERRIDES[case]
    config = _write(BASE)(tmp_path)
    result = runner.invoke(app, ["train", "--config", str(config)], env=env)
    one_line_error(result, *needles)


def test_an_md5_of_digits_stays_a_string() -> None:
    md5 = "12345678901234567890123456789012"
    cfg = load_config(ROOT / "configs/house-price.yaml", env={"MLPLATFORM__DATA__VERSION": md5})
    assert cfg.data.version == md5
    for text, expected in [("null", None), ("", None), ("0" * 32, "0" * 32)]:
        env = {"MLPLATFORM__DATA__VERSION": text}
        assert load_config(ROOT / "configs/house-price.yaml", env=env).data.version == expected


def test_string_fields_keep_the_text_and_others_are_yaml() -> None:
    env = {
        "MLPLATFORM__MODEL_NAME": "house-price",
        "MLPLATFORM__REGISTRY__EXPERIMENT": "007",  # a str field: not the int 7
        "MLPLATFORM__DATA__DATA_DIR": "2026",  # a Path field: not the int 2026
        "MLPLATFORM__TRAIN__EPOCHS": "12",
        "MLPLATFORM__TRAIN__LEARNING_RATE": "auto",
        "MLPLATFORM__NORMALIZE__SCALE_TARGET": "false",
    }
    cfg = load_config(ROOT / "configs/house-price.yaml", env=env)
    assert cfg.registry.experiment == "007"
    assert cfg.data.data_dir == Path("2026")
    assert (cfg.train.epochs, cfg.train.learning_rate) == (12, "auto")
    assert cfg.normalize.scale_target is False


def test_valid_config_and_override_get_past_loading(tmp_path: Path) -> None:
    """The control: the same command and base file fail later, on the data, not the config."""
    config = _write(BASE)(tmp_path)
    env = {"MLPLATFORM__DATA__VERSION": "12345678901234567890123456789012"}
    missing = tmp_path / "missing.parquet"
    result = runner.invoke(app, ["train", "--config", str(config), "--data", str(missing)], env=env)
    assert result.exit_code == 2 and "Traceback" not in result.output
    *progress, err = result.stderr.strip().splitlines()
    assert "train house-price" in progress[0] and err.startswith("error: no data at"), err


# -- model files -------------------------------------------------------------------------------
def valid_model() -> dict[str, Any]:
    """A two-feature regression model as ``LinearModel.save`` writes it: ŷ = 2·x + 1 (+ dist)."""
    return {
        "format": "mlplatform.linear/v1",
        "name": "tiny",
        "task": "regression",
        "loss": "mse",
        "threshold": 0.5,
        "scaler": {
            "numeric": ["x"],
            "categorical": ["district"],
            "order": ["x", "district"],
            "method": "minmax",
            "out_of_range": "extrapolate",
            "offset": [0.0],
            "scale": [1.0],
            "data_min": [0.0],
            "data_max": [1.0],
            "categories": {"district": ["a", "b"]},
        },
        "target": {"mean": 0.0, "sd": 1.0},
        "weights": [2.0, 0.0, 10.0],
        "bias": 1.0,
        "units": {},
        "metadata": {},
        "background": [[0.5, 0.0], [0.1, 1.0]],
    }


def _edit(change: Callable[[dict[str, Any]], object]) -> str:
    doc = copy.deepcopy(valid_model())
    change(doc)
    return json.dumps(doc)


MODEL_FILES: dict[str, tuple[str | bytes, list[str]]] = {
    "a-list": (json.dumps([valid_model()]), ["a JSON array, not an object"]),
    "a-number": ("42", ["a JSON number, not an object"]),
    "not-json": ("{'format': ", ["not a valid model file", "Expecting property name"]),
    "not-utf8": (b'{"name": "caf\xe9"}', ["not a valid model file: not UTF-8"]),
    "other-format": (_edit(lambda d: d.update(format="onnx")), ["format='onnx'"]),
    "missing-weights": (_edit(lambda d: d.pop("weights")), ["lacks the key 'weights'"]),
    "missing-scaler-key": (_edit(lambda d: d["scaler"].pop("order")), ["lacks the key 'order'"]),
    "scaler-not-object": (_edit(lambda d: d.update(scaler=[1, 2])), ["bad value"]),
    "weights-wrong-length": (
        _edit(lambda d: d.update(weights=[1.0, 2.0])),
        ["weights have shape (2,), expected (3,)"],
    ),
    "weights-ragged": (_edit(lambda d: d.update(weights=[1.0, [2.0]])), ["bad value"]),
    "weights-not-numbers": (_edit(lambda d: d.update(weights=["a", "b", "c"])), ["bad value"]),
    "offset-wrong-length": (
        _edit(lambda d: d["scaler"].update(offset=[0.0, 1.0])),
        ["scaler.offset has shape (2,), expected (1,)"],
    ),
    "background-wrong-width": (
        _edit(lambda d: d.update(background=[[1.0, 2.0, 3.0]])),
        ["background has shape (1, 3), expected (n, 2)"],
    ),
    "bias-not-a-number": (_edit(lambda d: d.update(bias="high")), ["bad value"]),
    "unknown-task": (_edit(lambda d: d.update(task="ranking")), ["task 'ranking'"]),
    "categories-missing": (
        _edit(lambda d: d["scaler"].update(categories={})),
        ["no categories for ['district']"],
    ),
}


@pytest.mark.parametrize("case", MODEL_FILES, ids=str)
def test_broken_model_file_is_one_line(case: str, tmp_path: Path) -> None:
    content, needles = MODEL_FILES[case]
    path = tmp_path / "model.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    result = runner.invoke(app, ["predict", "--model", str(path), "--row", '[0.5, "b"]'])
    one_line_error(result, *needles)


def test_model_path_missing_or_a_directory(tmp_path: Path) -> None:
    args = ["--row", "[0.5, 1]"]
    missing = runner.invoke(app, ["predict", "--model", str(tmp_path / "none.json"), *args])
    one_line_error(missing, "no model at", "train one first")
    folder = runner.invoke(app, ["predict", "--model", str(tmp_path), *args])
    one_line_error(folder, "is a directory, not a model file")


def test_valid_model_file_predicts(tmp_path: Path) -> None:
    """The control: the corpus' base model predicts 2·0.5 + 10 (district b) + 1 = 12."""
    path = tmp_path / "model.json"
    path.write_text(json.dumps(valid_model()))
    result = runner.invoke(app, ["predict", "--model", str(path), "--row", '[0.5, "b"]'])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["prediction"] == pytest.approx(12.0)


def test_console_script_env_override_error_is_one_line_on_stderr(tmp_path: Path) -> None:
    """The installed entry point, not the test runner: real stderr, real exit status."""
    config = _write(BASE)(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "mlplatform.cli", "train", "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "MLPLATFORM__TRAIN__EPOCHS": "{oops", "COLUMNS": "40"},
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "MLPLATFORM__TRAIN__EPOCHS: not valid YAML" in lines[0], lines
