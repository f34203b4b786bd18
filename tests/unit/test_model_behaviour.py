"""Model-behaviour tests (Made-With-ML style): what the trained models must get right."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlplatform.config import load_config
from mlplatform.core.datasets import HOUSE_COEF_VND
from mlplatform.core.model import LinearModel
from mlplatform.core.robustness import compare_losses
from mlplatform.core.training import generate, split_frame, train_model
from mlplatform.errors import DataError, ModelNotLoadedError


@pytest.fixture(scope="module")
def house() -> LinearModel:
    cfg = load_config("configs/house-price.yaml", env={})
    return train_model(cfg, split_frame(cfg, generate(cfg.data))).model


def test_house_coefficients_recover_the_generator_in_original_units(house: LinearModel) -> None:
    coef = house.coefficients()
    for name, true in HOUSE_COEF_VND.items():
        # bedrooms is strongly correlated with area, so its estimate is the loosest.
        rel = 0.5 if name == "bedrooms" else 0.1
        assert coef[name] == pytest.approx(true, rel=rel), name
    gap = coef["district=d1"] - coef["district=go_vap"]
    assert gap == pytest.approx(2.0e9, rel=0.15)


def test_saved_model_predicts_identically(house: LinearModel, tmp_path: Path) -> None:
    df = generate(load_config("configs/house-price.yaml", env={}).data).head(50)
    loaded = LinearModel.load(house.save(tmp_path / "m.json"))
    np.testing.assert_array_equal(house.predict(df), loaded.predict(df))


def test_rows_as_lists_or_dicts(house: LinearModel) -> None:
    row = [80.0, 2, 10.0, 5.0, "d3"]
    a = house.predict(house.frame([row]))
    b = house.predict(house.frame([dict(zip(house.feature_names, row, strict=True))]))
    assert a[0] == b[0] > 0


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([], "non-empty"),
        ([[1.0, 2.0]], "must list 5 features"),
        ([[80.0, 2, "old", 5.0, "d3"]], "'age_years' must be a number"),
        ([[80.0, 2, 10.0, 5.0, "atlantis"]], "unknown category"),
        ([[80.0, 2, float("nan"), 5.0, "d3"]], "missing or infinite"),
        ([{"area_m2": 1}], "missing features"),
    ],
)
def test_bad_rows_are_data_errors(house: LinearModel, rows: list, message: str) -> None:
    with pytest.raises(DataError, match=message):
        house.predict(house.frame(rows))


def test_loading_a_missing_or_corrupt_model(tmp_path: Path) -> None:
    with pytest.raises(ModelNotLoadedError, match="train one first"):
        LinearModel.load(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ModelNotLoadedError, match="format"):
        LinearModel.load(tmp_path / "bad.json")


def test_credit_model_ranks_applicants() -> None:
    cfg = load_config("configs/credit-risk.yaml", env={})
    out = train_model(cfg, split_frame(cfg, generate(cfg.data)))
    assert out.metrics["test"]["roc_auc"] > 0.8
    coef = out.model.coefficients()
    assert coef["late_payments"] < 0 < coef["income_vnd"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mae_and_huber_resist_outliers_that_pull_mse(seed: int) -> None:
    cmp = compare_losses(np.random.default_rng(seed))
    err = {r["loss"]: r["slope_error"] for r in cmp.rows()}
    assert err["mse"] > 1.0
    assert err["mae"] < 0.2
    assert err["huber"] < 0.2
