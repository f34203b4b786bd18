from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlplatform.config import PlatformConfig, load_config
from mlplatform.core.datasets import Splits
from mlplatform.core.scaling import FeatureScaler, fit_scaler
from mlplatform.core.training import generate, split_frame, train_model
from mlplatform.errors import DataError


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"a": [0.0, 5.0, 10.0], "c": [3.0, 3.0, 3.0], "k": ["x", "y", "x"]})


def test_minmax_formula_and_onehot() -> None:
    s = fit_scaler(_frame(), ("a", "c"), ("k",))
    X = s.transform(_frame())
    np.testing.assert_allclose(X[:, 0], [0.0, 0.5, 1.0])
    assert s.design_names == ("a", "c", "k=x", "k=y")
    np.testing.assert_array_equal(X[:, 2:], [[1, 0], [0, 1], [1, 0]])


def test_constant_column_becomes_zero_not_nan() -> None:
    s = fit_scaler(_frame(), ("a", "c"), ("k",))
    X = s.transform(_frame())
    np.testing.assert_array_equal(X[:, 1], 0.0)
    assert s.scale[1] == 1.0


def test_zscore_option() -> None:
    s = fit_scaler(_frame(), ("a",), method="zscore")
    X = s.transform(_frame())
    assert X[:, 0].mean() == pytest.approx(0.0)
    assert X[:, 0].std() == pytest.approx(1.0)


@pytest.mark.parametrize(("policy", "expected"), [("extrapolate", 2.0), ("clip", 1.0)])
def test_out_of_range_policies(policy: str, expected: float) -> None:
    s = fit_scaler(_frame(), ("a",), out_of_range=policy)  # type: ignore[arg-type]
    assert s.transform(pd.DataFrame({"a": [20.0]}))[0, 0] == expected


def test_out_of_range_error_names_the_feature() -> None:
    s = fit_scaler(_frame(), ("a",), out_of_range="error")
    with pytest.raises(DataError, match=r"'a' is outside its training range \[0, 10\]"):
        s.transform(pd.DataFrame({"a": [-1.0]}))


def test_unknown_category_lists_known_ones() -> None:
    s = fit_scaler(_frame(), ("a",), ("k",))
    with pytest.raises(DataError, match=r"unknown category \['z'\]; known: \['x', 'y'\]"):
        s.transform(pd.DataFrame({"a": [1.0], "k": ["z"]}))


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"a": ["1", "2"]}), "must be numeric"),
        (pd.DataFrame({"a": [1.0, np.nan]}), "missing or infinite"),
        (pd.DataFrame({"b": [1.0]}), "missing feature columns"),
        (pd.DataFrame({"a": []}, dtype=float), "empty"),
    ],
)
def test_bad_frames(frame: pd.DataFrame, message: str) -> None:
    with pytest.raises(DataError, match=message):
        fit_scaler(frame, ("a",))


def test_round_trip_through_dict() -> None:
    s = fit_scaler(_frame(), ("a", "c"), ("k",))
    t = FeatureScaler.from_dict(s.to_dict())
    np.testing.assert_array_equal(s.transform(_frame()), t.transform(_frame()))


def _house_config() -> PlatformConfig:
    return load_config("configs/house-price.yaml", env={}).with_overrides(
        data={"rows": 600}, train={"epochs": 50}
    )


def test_no_leakage_scaler_sees_training_rows_only() -> None:
    """Poison validation and test with extreme values: the fitted scaler must not move."""
    cfg = _house_config()
    splits = split_frame(cfg, generate(cfg.data))
    poisoned = Splits(
        splits.train,
        splits.val.assign(area_m2=1e6, district="d1"),
        splits.test.assign(area_m2=-1e6),
    )
    model = train_model(cfg, poisoned).model
    j = model.scaler.numeric.index("area_m2")
    assert model.scaler.data_min[j] == splits.train["area_m2"].min()
    assert model.scaler.data_max[j] == splits.train["area_m2"].max()
    clean = train_model(cfg, splits).model
    np.testing.assert_array_equal(model.scaler.offset, clean.scaler.offset)
    np.testing.assert_array_equal(model.scaler.scale, clean.scaler.scale)


def test_splits_are_disjoint_and_complete() -> None:
    cfg = _house_config()
    df = generate(cfg.data)
    s = split_frame(cfg, df)
    ids = [set(p["house_id"]) for p in (s.train, s.val, s.test)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert len(ids[0] | ids[1] | ids[2]) == len(df)
