from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from mlplatform.config import PlatformConfig, as_percent, load_config
from mlplatform.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_load(path: Path) -> None:
    cfg = load_config(path, env={})
    assert cfg.model_name == path.stem
    assert PlatformConfig.from_json(cfg.to_json()) == cfg


def test_env_override_parses_yaml_values() -> None:
    env = {"MLPLATFORM__TRAIN__EPOCHS": "7", "MLPLATFORM__NORMALIZE__METHOD": "zscore"}
    cfg = load_config(ROOT / "configs/house-price.yaml", env=env)
    assert cfg.train.epochs == 7
    assert cfg.normalize.method == "zscore"


def test_bad_value_names_field_and_problem(tmp_path: Path) -> None:
    text = (
        (ROOT / "configs/house-price.yaml")
        .read_text()
        .replace("learning_rate: 0.5", "learning_rate: -1")
    )
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "bad.yaml", env={})
    assert "train.learning_rate" in str(err.value)
    assert "must be in (0, 1000] or 'auto'" in str(err.value)


def test_unknown_field_is_rejected() -> None:
    env = {"MLPLATFORM__TRAIN__LEARNIG_RATE": "0.1"}
    with pytest.raises(ConfigError, match=r"train\.learnig_rate: Extra inputs are not permitted"):
        load_config(ROOT / "configs/house-price.yaml", env=env)


def test_loss_must_match_task() -> None:
    env = {"MLPLATFORM__TRAIN__LOSS": "logistic"}
    with pytest.raises(ConfigError, match="does not match loss"):
        load_config(ROOT / "configs/house-price.yaml", env=env)


def test_config_is_frozen() -> None:
    cfg = load_config(ROOT / "configs/credit-risk.yaml", env={})
    with pytest.raises(ValidationError):
        cfg.train.epochs = 3  # type: ignore[misc]


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "x.yaml").write_text("model_name: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "x.yaml")


def test_with_overrides_validates() -> None:
    cfg = load_config(ROOT / "configs/house-price.yaml", env={})
    assert cfg.with_overrides(train={"epochs": 3}).train.epochs == 3
    with pytest.raises(ConfigError, match="train.epochs"):
        cfg.with_overrides(train={"epochs": 0})


@pytest.mark.parametrize("bad", [-1, 101, True, 5.0, "5", None])
def test_percent_is_one_type_for_config_and_admin_api(bad: object) -> None:
    """serve.canary_percent and the router's admin API check the same Percent type."""
    with pytest.raises(ValueError, match=r"canary_percent must be an integer in 0\.\.100, got"):
        as_percent(bad)
    assert as_percent(0) == 0 and as_percent(100) == 100
    cfg = load_config(ROOT / "configs/house-price.yaml", env={})
    if isinstance(bad, int) and not isinstance(bad, bool):
        with pytest.raises(ConfigError, match="serve.canary_percent"):
            cfg.with_overrides(serve={"canary_percent": bad})


def test_feature_units_are_declared_with_the_feature() -> None:
    cfg = load_config(ROOT / "configs/house-price.yaml", env={})
    units = {f.name: f.unit for f in cfg.features}
    assert units["area_m2"] == "m²" and units["distance_km"] == "km"
    assert units["bedrooms"] is None
