"""Feature scaling fitted on the training split only, applied identically at serving.

Min-max: ``x' = (x - min) / (max - min)`` with min/max taken from the training rows.
Z-score: ``x' = (x - mean) / sd``. Categorical features become integer codes in
the encoded space and one-hot columns in the design matrix.

Edge cases, decided once here:

* **Constant column** (max = min, or sd = 0 for z-score): the scale is set to 1, so
  the column becomes ``x - min`` (all zeros on training data); its weight stays at
  zero under L2 and it does not blow up with a division by zero.
* **Out of range at serving** (a value outside the training [min, max]):
  ``extrapolate`` (default) passes it through, so x' may be < 0 or > 1 and the
  linear model extrapolates; ``clip`` clips x' to [0, 1]; ``error`` raises
  :class:`~mlplatform.errors.DataError` naming the feature. Z-score has no range,
  so ``clip`` and ``error`` use the training min/max as well.
* **Unknown category at serving**: always a :class:`DataError` listing the known ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from mlplatform.core.space import FeatureSpace
from mlplatform.errors import DataError

FloatArray = NDArray[np.float64]
Method = Literal["minmax", "zscore"]
OutOfRange = Literal["extrapolate", "clip", "error"]


@dataclass(frozen=True)
class FeatureScaler:
    """Fitted scaling of numeric features and the category lists of categorical ones."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    order: tuple[str, ...]
    method: Method
    out_of_range: OutOfRange
    offset: FloatArray  # (n_numeric,) min or mean
    scale: FloatArray  # (n_numeric,) range or sd (1 where constant)
    data_min: FloatArray
    data_max: FloatArray
    categories: dict[str, tuple[str, ...]]

    @property
    def design_names(self) -> tuple[str, ...]:
        """Column names of the design matrix: numeric first, then one-hot columns."""
        onehot = [f"{c}={v}" for c in self.categorical for v in self.categories[c]]
        return self.numeric + tuple(onehot)

    def space(self, units: dict[str, str] | None = None) -> FeatureSpace:
        """The encoded space (one column per feature, in ``order``)."""
        units = units or {}
        offs, scales, cats, unit_map = [], [], {}, {}
        for j, name in enumerate(self.order):
            if name in self.categories:
                offs.append(0.0)
                scales.append(1.0)
                cats[j] = self.categories[name]
            else:
                k = self.numeric.index(name)
                offs.append(float(self.offset[k]))
                scales.append(float(self.scale[k]))
            if name in units:
                unit_map[j] = units[name]
        return FeatureSpace(
            names=self.order,
            categorical=tuple(sorted(cats)),
            categories=cats,
            offset=np.array(offs),
            scale=np.array(scales),
            units=unit_map,
        )

    def scale_numeric(self, values: FloatArray) -> FloatArray:
        """(n, n_numeric) raw → scaled, applying the out-of-range policy."""
        if self.out_of_range == "error":
            below = values < self.data_min
            above = values > self.data_max
            if below.any() or above.any():
                j = int(np.argwhere(below | above)[0][1])
                raise DataError(
                    f"feature {self.numeric[j]!r} is outside its training range "
                    f"[{self.data_min[j]:g}, {self.data_max[j]:g}]"
                )
        scaled = (values - self.offset) / self.scale
        if self.out_of_range == "clip":
            lo = (self.data_min - self.offset) / self.scale
            hi = (self.data_max - self.offset) / self.scale
            scaled = np.clip(scaled, lo, hi)
        return scaled

    def codes(self, df: pd.DataFrame) -> dict[str, NDArray[np.int64]]:
        """Integer codes of each categorical column; unknown labels raise DataError."""
        out: dict[str, NDArray[np.int64]] = {}
        for c in self.categorical:
            known = self.categories[c]
            values = df[c].astype(str)
            code = pd.Categorical(values, categories=list(known)).codes.astype(np.int64)
            if (code < 0).any():
                bad = sorted(set(values[code < 0]))[:5]
                raise DataError(f"feature {c!r}: unknown category {bad}; known: {list(known)}")
            out[c] = code
        return out

    def encode(self, df: pd.DataFrame) -> FloatArray:
        """Raw frame → encoded space (n, d): scaled numerics and category codes."""
        numeric = self.scale_numeric(numeric_matrix(df, self.numeric))
        codes = self.codes(df)
        cols = [
            codes[name].astype(np.float64)
            if name in codes
            else numeric[:, self.numeric.index(name)]
            for name in self.order
        ]
        return np.column_stack(cols) if cols else np.zeros((len(df), 0))

    def decode(self, encoded: FloatArray) -> pd.DataFrame:
        """Encoded (n, d) → raw feature frame: numerics back to their units, codes to labels."""
        cols: dict[str, Any] = {}
        for j, name in enumerate(self.order):
            if name in self.categories:
                labels = np.asarray(self.categories[name], dtype=object)
                cols[name] = labels[encoded[:, j].astype(np.int64)]
            else:
                k = self.numeric.index(name)
                cols[name] = encoded[:, j] * self.scale[k] + self.offset[k]
        return pd.DataFrame(cols)

    def design(self, encoded: FloatArray) -> FloatArray:
        """Encoded (n, d) → design matrix (n, n_numeric + Σ categories) with one-hot columns."""
        num_idx = [self.order.index(c) for c in self.numeric]
        blocks = [encoded[:, num_idx]]
        for c in self.categorical:
            code = encoded[:, self.order.index(c)].astype(np.int64)
            blocks.append(np.eye(len(self.categories[c]))[code])
        return np.ascontiguousarray(np.hstack(blocks))

    def transform(self, df: pd.DataFrame) -> FloatArray:
        """Raw frame → design matrix."""
        return self.design(self.encode(df))

    def to_dict(self) -> dict[str, Any]:
        return {
            "numeric": list(self.numeric),
            "categorical": list(self.categorical),
            "order": list(self.order),
            "method": self.method,
            "out_of_range": self.out_of_range,
            "offset": self.offset.tolist(),
            "scale": self.scale.tolist(),
            "data_min": self.data_min.tolist(),
            "data_max": self.data_max.tolist(),
            "categories": {k: list(v) for k, v in self.categories.items()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureScaler:
        return cls(
            numeric=tuple(d["numeric"]),
            categorical=tuple(d["categorical"]),
            order=tuple(d["order"]),
            method=d["method"],
            out_of_range=d["out_of_range"],
            offset=np.asarray(d["offset"], dtype=np.float64),
            scale=np.asarray(d["scale"], dtype=np.float64),
            data_min=np.asarray(d["data_min"], dtype=np.float64),
            data_max=np.asarray(d["data_max"], dtype=np.float64),
            categories={k: tuple(v) for k, v in d["categories"].items()},
        )


def numeric_matrix(df: pd.DataFrame, columns: tuple[str, ...]) -> FloatArray:
    """Columns as float64 (n, k); missing, non-numeric or non-finite values raise DataError."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"missing feature columns {missing}; got {list(df.columns)}")
    for c in columns:
        if not pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c]):
            raise DataError(f"feature {c!r} must be numeric, got dtype {df[c].dtype}")
    # column by column: ``df.loc[:, columns].to_numpy()`` builds a frame first (~80 µs a call)
    values: FloatArray = (
        np.column_stack([df[c].to_numpy(dtype=np.float64) for c in columns])
        if columns
        else np.zeros((len(df), 0))
    )
    bad = ~np.isfinite(values)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise DataError(f"feature {columns[j]!r} has a missing or infinite value (row {i})")
    return values


def fit_scaler(
    train: pd.DataFrame,
    numeric: tuple[str, ...],
    categorical: tuple[str, ...] = (),
    method: Method = "minmax",
    out_of_range: OutOfRange = "extrapolate",
    order: tuple[str, ...] | None = None,
) -> FeatureScaler:
    """Fit on the training rows only (the caller must not pass validation or test rows)."""
    if len(train) == 0:
        raise DataError("cannot fit a scaler on an empty training set")
    values = numeric_matrix(train, numeric)
    lo, hi = values.min(axis=0), values.max(axis=0)
    if method == "minmax":
        offset, scale = lo, hi - lo
    else:
        offset, scale = values.mean(axis=0), values.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    cats: dict[str, tuple[str, ...]] = {}
    for c in categorical:
        if c not in train.columns:
            raise DataError(f"missing categorical column {c!r}")
        if train[c].isna().any():
            raise DataError(f"categorical feature {c!r} has missing values")
        cats[c] = tuple(sorted(train[c].astype(str).unique()))
    return FeatureScaler(
        numeric=numeric,
        categorical=categorical,
        order=order or numeric + categorical,
        method=method,
        out_of_range=out_of_range,
        offset=offset,
        scale=scale,
        data_min=lo,
        data_max=hi,
        categories=cats,
    )


@dataclass(frozen=True)
class TargetScaler:
    """z-score of a regression target: y' = (y - mean) / sd (identity for classification)."""

    mean: float = 0.0
    sd: float = 1.0

    def forward(self, y: FloatArray) -> FloatArray:
        return (y - self.mean) / self.sd

    def inverse(self, y: FloatArray) -> FloatArray:
        return y * self.sd + self.mean

    @classmethod
    def fit(cls, y: FloatArray) -> TargetScaler:
        sd = float(np.std(y))
        return cls(float(np.mean(y)), sd if sd > 0 else 1.0)
