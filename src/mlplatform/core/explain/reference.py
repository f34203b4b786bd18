"""The reference point b of the contributions, and the one wording every output uses.

A slope β_j says how the surrogate g changes per unit of feature j; a contribution says
how feature j moves *this* prediction compared with a reference row b:

    c_j = β_j (u_j(x) − u_j(b)),   so that   g(x) = g(b) + Σ_j c_j  exactly,

with u_j the surrogate's input (the value for a numeric column, "same category / same
quartile as x" for an indicator). b is the background's mean or median (categoricals:
their most frequent code) or a given row; its name ("the average applicant") travels
with every explanation so each output says what it compares with.

>>> describe("late_payments = 0", 0.31, "the average applicant")
'late_payments = 0 pulls up by 0.31 compared with the average applicant'
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlplatform.core.explain.types import FloatArray
from mlplatform.core.space import FeatureSpace

_NAMES = {"mean": "the average {e}", "median": "the median {e}", "row": "the reference {e}"}


@dataclass(frozen=True, eq=False)
class Reference:
    """An encoded reference row b: (d,) and how outputs name it."""

    row: FloatArray
    name: str


def reference_point(
    background: FloatArray,
    space: FeatureSpace,
    how: str,
    entity: str = "row",
    row: FloatArray | None = None,
) -> Reference:
    """b from background rows (n, d): ``how`` is "mean", "median" or "row" (then ``row``)."""
    if how == "row" and row is not None:
        b = np.asarray(row, dtype=np.float64).copy()
    else:
        centre = np.median if how == "median" else np.mean
        b = np.asarray(centre(background, axis=0), dtype=np.float64)
        for j in space.categorical:
            values, counts = np.unique(background[:, j], return_counts=True)
            b[j] = values[np.argmax(counts)]
    return Reference(b, _NAMES.get(how, _NAMES["row"]).format(e=entity))


def entity_noun(entity: str) -> str:
    """``applicant_id`` → ``applicant``: the noun outputs compare with."""
    noun = entity.removesuffix("_id").removesuffix("id").strip("_ ")
    return noun.replace("_", " ") or "row"


def direction(c: float) -> str:
    """ "pulls up", "pulls down" or "no effect" for a contribution c."""
    if c > 0:
        return "pulls up"
    return "pulls down" if c < 0 else "no effect"


def describe(label: str, c: float, reference: str) -> str:
    """One contribution in words, e.g. ``income = 9,000,000 VND pulls down by 0.21 …``."""
    if c == 0:
        return f"{label} has no effect compared with {reference}"
    return f"{label} {direction(c)} by {abs(c):.2g} compared with {reference}"
