"""One row's LIME explanation: the surrogate's slopes, and what they mean at the point.

The surrogate is g(z) = intercept + Σ_j β_j u_j(z) with

* u_j(z) = z_j for a numeric column in the continuous representation (β_j: change of f
  per normalized unit);
* u_j(z) = 1[z_j = x_j] for a categorical column, and 1[bin(z_j) = bin(x_j)] for a
  numeric column in the quartile representation (``lime``'s default: β_j is the effect
  of staying in x's training quartile).

Read at the point, compared with a reference row b (:mod:`.reference`), feature j
contributes c_j = β_j (u_j(x) − u_j(b)) and g(x) = g(b) + Σ_j c_j exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlplatform.core.explain.reference import describe, direction
from mlplatform.core.explain.types import FloatArray

Representation = str  # "continuous" | "quartile"


@dataclass(frozen=True, eq=False)
class LimeExplanation:
    """One row's local surrogate (module docstring); arrays are (d,).

    ``coefficients`` (β) are 0 outside ``selected`` (ordered by |β_j|, largest first);
    ``local_prediction`` is g(x), ``model_prediction`` f(x) (for classification the
    probability of ``target_class``); ``score_r2``/``fidelity_loss`` are the weighted R²
    and the weighted mean squared error Σπ(f − g)²/Σπ on the neighbourhood.
    ``reference``: b (d,), named ``reference_name``; ``edges[j]``: the quartile edges of
    numeric column j in the quartile representation (empty otherwise).
    """

    x: FloatArray
    coefficients: FloatArray
    selected: tuple[int, ...]
    intercept: float
    local_prediction: float
    model_prediction: float
    score_r2: float
    fidelity_loss: float
    feature_names: tuple[str, ...]
    feature_values: tuple[str, ...]
    categorical: tuple[int, ...]
    target_class: int | None
    kernel_width: float
    num_samples: int
    reference: FloatArray | None = None
    reference_name: str = "the reference row"
    reference_values: tuple[str, ...] = ()
    edges: tuple[FloatArray, ...] = ()
    bin_labels: tuple[str, ...] = ()

    @property
    def representation(self) -> Representation:
        return "quartile" if self.edges else "continuous"

    def top_features(self, k: int) -> tuple[int, ...]:
        """The k features with the largest |β_j| in the surrogate."""
        return self.selected[:k]

    def inputs(self, Z: FloatArray) -> FloatArray:
        """u(Z): (n, d), the surrogate's inputs for encoded rows Z: (n, d)."""
        U = np.array(Z, dtype=np.float64, copy=True)
        cat = list(self.categorical)
        U[:, cat] = Z[:, cat] == self.x[cat]
        for j, e in enumerate(self.edges):
            if e.size:
                U[:, j] = np.searchsorted(e, Z[:, j]) == np.searchsorted(e, self.x[j])
        return U

    def predict(self, Z: FloatArray) -> FloatArray:
        """g(Z): (n,) for encoded rows Z: (n, d)."""
        return np.asarray(self.intercept + self.inputs(Z) @ self.coefficients, dtype=np.float64)

    @property
    def contribution_values(self) -> FloatArray:
        """c: (d,), c_j = β_j (u_j(x) − u_j(b)); zeros without a reference."""
        if self.reference is None:
            return np.zeros_like(self.coefficients)
        u = self.inputs(np.stack([self.x, self.reference]))
        return np.asarray(self.coefficients * (u[0] - u[1]), dtype=np.float64)

    @property
    def reference_prediction(self) -> float:
        """g(b): the surrogate at the reference row (g(x) = g(b) + Σ c_j)."""
        b = self.x if self.reference is None else self.reference
        return float(self.predict(b[None, :])[0])

    def label(self, j: int) -> str:
        """``income = 50,000,000 VND``, or x's quartile, e.g. ``late_payments <= 0``."""
        if self.bin_labels and self.bin_labels[j]:
            return self.bin_labels[j]
        return f"{self.feature_names[j]} = {self.feature_values[j]}"

    def by_contribution(self) -> list[int]:
        """The selected features ordered by |c_j|, largest first."""
        c = self.contribution_values
        return sorted(self.selected, key=lambda j: -abs(c[j]))

    def contributions(self) -> list[tuple[str, float]]:
        """``(label, c_j)`` for the selected features, largest |c_j| first."""
        c = self.contribution_values
        return [(self.label(j), float(c[j])) for j in self.by_contribution()]

    def slopes(self) -> list[tuple[str, float]]:
        """``(label, β_j)`` for the selected features, largest |β_j| first."""
        return [(self.label(j), float(self.coefficients[j])) for j in self.selected]

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: predictions, the reference, contributions (with words) and slopes."""
        c = self.contribution_values
        return {
            "model_prediction": self.model_prediction,
            "local_prediction": self.local_prediction,
            "intercept": self.intercept,
            "score_r2": self.score_r2,
            "representation": self.representation,
            "reference": {
                "name": self.reference_name,
                "local_prediction": self.reference_prediction,
                "values": dict(zip(self.feature_names, self.reference_values, strict=False)),
            },
            "contributions": [
                {
                    "feature": self.feature_names[j],
                    "value": self.feature_values[j],
                    "label": self.label(j),
                    "contribution": float(c[j]),
                    "direction": direction(float(c[j])),
                    "text": describe(self.label(j), float(c[j]), self.reference_name),
                    "weight": float(self.coefficients[j]),
                }
                for j in self.by_contribution()
            ],
        }
