"""The encoded feature space that explainers and drift checks work in.

A row of the *encoded* space has one column per input feature (not per one-hot
column): a numeric feature holds its normalized value (min-max: 0..1 over the
training split), a categorical feature holds its integer category code
(0..k-1) stored as float64. ``original = encoded * scale + offset`` turns a
numeric column back into its original unit (for readable rules and reports).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from mlplatform.errors import DataError

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class FeatureSpace:
    """Names, kinds and units of the encoded columns.

    ``names``: (d,) feature names; ``categorical``: indices of code columns;
    ``categories[j]``: labels of code column j; ``offset``/``scale``: (d,) decode
    numeric columns to original units (0 and 1 for categorical columns).
    """

    names: tuple[str, ...]
    categorical: tuple[int, ...] = ()
    categories: Mapping[int, tuple[str, ...]] = field(default_factory=dict)
    offset: FloatArray = field(default_factory=lambda: np.zeros(0))
    scale: FloatArray = field(default_factory=lambda: np.zeros(0))
    units: Mapping[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        d = len(self.names)
        if self.offset.size == 0:
            object.__setattr__(self, "offset", np.zeros(d))
        if self.scale.size == 0:
            object.__setattr__(self, "scale", np.ones(d))
        if self.offset.shape != (d,) or self.scale.shape != (d,):
            raise DataError("offset and scale must have one entry per feature")
        for j in self.categorical:
            if not 0 <= j < d or not self.categories.get(j):
                raise DataError(f"categorical column {j} needs a non-empty category list")

    @property
    def width(self) -> int:
        return len(self.names)

    @property
    def numeric(self) -> tuple[int, ...]:
        return tuple(j for j in range(self.width) if j not in self.categorical)

    def is_categorical(self, j: int) -> bool:
        return j in self.categorical

    def decode(self, j: int, value: float) -> float | str:
        """The original-unit value (number) or label (category) of encoded ``value``."""
        if self.is_categorical(j):
            return self.categories[j][int(round(value))]
        return float(value * self.scale[j] + self.offset[j])

    def format_value(self, j: int, value: float) -> str:
        """Human-readable value, e.g. ``50,000,000 VND`` or ``d1``."""
        v = self.decode(j, value)
        if isinstance(v, str):
            return v
        text = f"{v:,.0f}" if abs(v) >= 1000 else f"{v:,.3g}"
        unit = self.units.get(j, "")
        return f"{text} {unit}".strip()

    def check(self, X: FloatArray, what: str = "input") -> FloatArray:
        """Validate an encoded matrix (n, d); raise :class:`DataError` naming the problem."""
        A = np.asarray(X, dtype=np.float64)
        if A.ndim == 1:
            A = A[None, :]
        if A.ndim != 2 or A.shape[1] != self.width:
            raise DataError(
                f"{what}: expected {self.width} features {list(self.names)}, got shape {A.shape}"
            )
        if A.shape[0] == 0:
            raise DataError(f"{what}: no rows")
        bad = ~np.isfinite(A)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise DataError(f"{what}: feature {self.names[j]!r} is not finite in row {i}")
        for j in self.categorical:
            codes = A[:, j]
            k = len(self.categories[j])
            if np.any((codes != np.round(codes)) | (codes < 0) | (codes >= k)):
                raise DataError(
                    f"{what}: feature {self.names[j]!r} has an unknown category code; "
                    f"known: {list(self.categories[j])}"
                )
        return A
