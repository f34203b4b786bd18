"""LIME: a weighted sparse linear surrogate of the model around each explained row.

For a row x, sample a neighbourhood z ~ around x (see :mod:`.neighbourhood`), weight
each sample by π_x(z) = exp(−D(x, z)²/σ²) and fit

    g = argmin_g Σ_z π_x(z) (f(z) − g(z))² + α‖β‖²,  g(z) = β₀ + Σ_j β_j u_j(z)

on the K features picked by ``cfg.feature_selection`` (the Ω(g) complexity limit).
u_j(z) = z_j for a numeric column (β_j: change of f per normalized unit, 0..1 being
the training range) and u_j(z) = 1[z_j = x_j] for a categorical one (β_j: effect of
keeping x's category). The ridge penalty acts on standardized inputs (z_j / s_j), as
in ``lime``, so it does not depend on a column's spread.

All rows of a batch are explained with one ``predict_fn`` call on (R·N, d) samples.

:func:`lime_explain_batch` uses common random numbers: one draw of the noise ε and of
the categorical codes serves the whole batch (:func:`.neighbourhood.sample_shared`).
Row x's β̂ is a function of f, x and the draws (ε_n, c_n), n ≤ N, alone, which are
i.i.d. whether or not other rows reuse them, so each row's explanation has exactly the
distribution LIME's has (the same seed gives the same β̂ in any batch); only different
rows' explanations become correlated. Per-row results (coefficients, R², agreement
with ``lime``) are unchanged in law; averages over rows stay unbiased, but their
sampling error no longer shrinks as 1/√R (the rows' errors are positively correlated),
so aggregate over independent draws when that matters. Rows with the same categorical
values (all rows, for numeric data) share the inputs U and weights π, so their Gram
matrix is computed once (and, for one design with every feature kept, factorized
once) and only Σπ u f(z) differs per row. Duplicated rows get identical explanations:
pass ``shared_noise=False`` for independent neighbourhoods (as the seed-stability
metrics do, via :func:`explain_prepared`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlplatform.config import ExplainConfig
from mlplatform.core.explain.neighbourhood import (
    Background,
    kernel_weights,
    neighbourhood_moments,
    sample_neighbourhood,
    sample_shared,
    shared_neighbourhood_moments,
)
from mlplatform.core.explain.surrogate import (
    Moments,
    forward_select,
    lasso_select,
    residual_ss,
    ridge_fit,
    weighted_r2,
)
from mlplatform.core.explain.target import ExplainTarget
from mlplatform.core.explain.types import (
    BoolArray,
    FloatArray,
    PredictFn,
    call_model,
    check_rows,
    kernel_width,
)
from mlplatform.core.space import FeatureSpace


@dataclass(frozen=True, eq=False)
class LimeExplanation:
    """One row's local surrogate (module docstring); arrays are (d,).

    ``coefficients`` are 0 outside ``selected`` (ordered by |β_j|, largest first);
    ``local_prediction`` is g(x), ``model_prediction`` f(x) (for classification the
    probability of ``target_class``); ``score_r2``/``fidelity_loss`` are the weighted R²
    and the weighted mean squared error Σπ(f − g)²/Σπ on the neighbourhood.
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

    def top_features(self, k: int) -> tuple[int, ...]:
        """The k features with the largest |β_j| in the surrogate."""
        return self.selected[:k]

    def contributions(self) -> list[tuple[str, float]]:
        """``("income = 50,000,000 VND", β_j)`` for the selected features, largest first."""
        return [
            (f"{self.feature_names[j]} = {self.feature_values[j]}", float(self.coefficients[j]))
            for j in self.selected
        ]

    def to_dict(self) -> dict[str, object]:
        """JSON-ready summary: predictions, intercept, fit and the contributions."""
        return {
            "model_prediction": self.model_prediction,
            "local_prediction": self.local_prediction,
            "intercept": self.intercept,
            "score_r2": self.score_r2,
            "contributions": [
                {
                    "feature": self.feature_names[j],
                    "value": self.feature_values[j],
                    "weight": float(self.coefficients[j]),
                }
                for j in self.selected
            ],
        }

    def predict(self, Z: FloatArray) -> FloatArray:
        """g(Z): (n,) for encoded rows Z: (n, d)."""
        U = np.array(Z, dtype=np.float64, copy=True)
        cat = list(self.categorical)
        U[:, cat] = Z[:, cat] == self.x[cat]
        return np.asarray(self.intercept + U @ self.coefficients, dtype=np.float64)


def lime_explain_batch(
    target: ExplainTarget,
    rows: FloatArray,
    cfg: ExplainConfig,
    rng: np.random.Generator,
    *,
    target_class: int = 1,
    shared_noise: bool = True,
) -> tuple[LimeExplanation, ...]:
    """Explain every row of ``rows`` (R, d) with one model call on R·cfg.num_samples samples.

    Neighbourhoods come from ``target.background``; ``shared_noise``: one noise draw for
    the batch (module docstring). Raises DataError for invalid rows and ExplanationError
    for ``cfg.num_features`` > d.
    """
    X = check_rows(rows, target.space, cfg)
    return explain_prepared(target, X, cfg, rng, target_class, shared_noise=shared_noise)


def explain_prepared(
    target: ExplainTarget,
    X: FloatArray,
    cfg: ExplainConfig,
    rng: np.random.Generator,
    target_class: int = 1,
    *,
    shared_noise: bool = False,
) -> tuple[LimeExplanation, ...]:
    """:func:`lime_explain_batch` for already validated rows X: (R, d).

    Independent neighbourhoods per row unless ``shared_noise``.
    """
    bg, predict_fn = target.background_summary, target.predict_fn
    label = int(target_class) if target.task == "classification" else None
    width = kernel_width(cfg, X.shape[1])
    if shared_noise:
        snb = sample_shared(X, bg, cfg.num_samples, rng)
        m = shared_neighbourhood_moments(snb, _targets(predict_fn, snb.Z, label), width)
    else:
        nb = sample_neighbourhood(X, bg, cfg.num_samples, rng)
        y = _targets(predict_fn, nb.Z, label)
        m = neighbourhood_moments(nb, X, y, kernel_weights(nb.d2, width), bg)
    fit = _fit(m, X, bg, cfg, width, label)
    return tuple(_package(fit, r, X, bg, target.space, cfg) for r in range(X.shape[0]))


def _targets(predict_fn: PredictFn, Z: FloatArray, label: int | None) -> FloatArray:
    """f(z) (R, N) for samples Z (R, N, d) in one model call; 1 − P(class 1) for class 0."""
    R, N, d = Z.shape
    y = call_model(predict_fn, Z.reshape(R * N, d)).reshape(R, N)
    return 1.0 - y if label == 0 else y


def _fit(
    m: Moments,
    X: FloatArray,
    bg: Background,
    cfg: ExplainConfig,
    width: float,
    label: int | None,
) -> _Fit:
    """Select features, fit the ridge and express it in the reported units.

    With β' per standardized unit and b₀' = g at u = 0: β = β'/s, intercept
    b₀ = b₀' − Σ_numeric β_j x_j (g at z = 0) and g(x) = b₀' + Σ_categorical β_j.
    """
    mask = select_features(m, cfg)
    coef, b0 = ridge_fit(m, mask, cfg.ridge_alpha)
    is_cat = np.zeros(X.shape[1])
    is_cat[bg.categorical] = 1.0
    per_unit = coef / bg.scale
    return _Fit(
        mask=mask,
        coef=per_unit,
        intercept=b0 - (per_unit * X * (1.0 - is_cat)).sum(axis=1),
        local=b0 + coef @ is_cat,
        r2=weighted_r2(m, coef),
        loss=residual_ss(m, coef) / m.weight_sum,
        fx=m.y_first,
        width=width,
        label=label,
    )


def select_features(m: Moments, cfg: ExplainConfig) -> BoolArray:
    """(R, d) mask of the surrogate's features: all, forward selection or the lasso path."""
    if cfg.feature_selection == "forward":
        return forward_select(m, cfg.num_features)
    if cfg.feature_selection == "lasso":
        return lasso_select(m, cfg.num_features)
    return np.ones(m.cross.shape, dtype=bool)


@dataclass(frozen=True, eq=False)
class _Fit:
    mask: BoolArray
    coef: FloatArray  # (R, d), per normalized unit
    intercept: FloatArray  # (R,), g at z = 0 with every category unlike x's
    local: FloatArray  # (R,), g(x)
    r2: FloatArray  # (R,)
    loss: FloatArray  # (R,)
    fx: FloatArray  # (R,)
    width: float
    label: int | None


def _package(
    fit: _Fit, r: int, X: FloatArray, bg: Background, space: FeatureSpace, cfg: ExplainConfig
) -> LimeExplanation:
    """The r-th explanation of the batch."""
    coef, x = fit.coef[r], X[r].copy()
    order = np.argsort(-np.abs(coef), kind="stable")
    selected = tuple(int(j) for j in order if fit.mask[r, j])
    return LimeExplanation(
        x=x,
        coefficients=np.where(fit.mask[r], coef, 0.0),
        selected=selected,
        intercept=float(fit.intercept[r]),
        local_prediction=float(fit.local[r]),
        model_prediction=float(fit.fx[r]),
        score_r2=float(fit.r2[r]),
        fidelity_loss=float(fit.loss[r]),
        feature_names=space.names,
        feature_values=tuple(space.format_value(j, float(v)) for j, v in enumerate(x)),
        categorical=tuple(int(j) for j in bg.categorical),
        target_class=fit.label,
        kernel_width=fit.width,
        num_samples=cfg.num_samples,
    )
