"""LIME: a weighted sparse linear surrogate of the model around each explained row.

(This docstring describes the continuous representation; ``explain.representation:
quartile`` reads every numeric column as "in x's training quartile", see :mod:`.quartile`.
Either way the explanation also reads at the point, compared with a reference row:
:mod:`.explanation`, :mod:`.reference`.)

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

from dataclasses import dataclass, replace
from functools import partial

import numpy as np

from mlplatform.config import ExplainConfig
from mlplatform.core.explain.explanation import LimeExplanation as LimeExplanation
from mlplatform.core.explain.neighbourhood import (
    Background,
    kernel_weights,
    neighbourhood_moments,
    sample_neighbourhood,
    sample_shared,
    shared_neighbourhood_moments,
)
from mlplatform.core.explain.quartile import bin_label, sample_quartile
from mlplatform.core.explain.reference import Reference
from mlplatform.core.explain.surrogate import (
    Moments,
    forward_select,
    lasso_select,
    residual_ss,
    ridge_fit,
    weighted_moments,
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

    Independent neighbourhoods per row unless ``shared_noise`` (continuous representation
    only: ``cfg.representation == "quartile"`` samples :mod:`.quartile` neighbourhoods,
    always independent). Each explanation carries the reference ``cfg.reference``.
    """
    label = int(target_class) if target.task == "classification" else None
    width = kernel_width(cfg, X.shape[1])
    m, bg = _moments(target, X, cfg, rng, label, width, shared_noise)
    fit = _fit(m, X, bg, cfg, width, label)
    ref = target.reference(cfg.reference)
    return tuple(_package(fit, r, X, target, cfg, ref) for r in range(X.shape[0]))


def _moments(
    target: ExplainTarget,
    X: FloatArray,
    cfg: ExplainConfig,
    rng: np.random.Generator,
    label: int | None,
    width: float,
    shared_noise: bool,
) -> tuple[Moments, Background]:
    """The neighbourhoods' weighted moments, and the background as the fit reads columns."""
    bg, predict_fn = target.background_summary, target.predict_fn
    if cfg.representation == "quartile":
        bnb = sample_quartile(X, bg, target.quartiles, cfg.num_samples, rng)
        w = kernel_weights(bnb.d2, width)
        return weighted_moments(bnb.U, _targets(predict_fn, bnb.Z, label), w), indicators(bg)
    if shared_noise:
        snb = sample_shared(X, bg, cfg.num_samples, rng)
        y = _targets(predict_fn, snb.Z, label)
        return shared_neighbourhood_moments(snb, y, width), bg
    nb = sample_neighbourhood(X, bg, cfg.num_samples, rng)
    y = _targets(predict_fn, nb.Z, label)
    return neighbourhood_moments(nb, X, y, kernel_weights(nb.d2, width), bg), bg


def indicators(bg: Background) -> Background:
    """``bg`` with every column read as an indicator (the quartile representation)."""
    d = bg.scale.size
    every = np.arange(d, dtype=np.int64)
    return replace(bg, numeric=every[:0], categorical=every, scale=np.ones(d))


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
    fit: _Fit,
    r: int,
    X: FloatArray,
    target: ExplainTarget,
    cfg: ExplainConfig,
    ref: Reference,
) -> LimeExplanation:
    """The r-th explanation of the batch, read against the reference ``ref``."""
    coef, x, space = fit.coef[r], X[r].copy(), target.space
    order = np.argsort(-np.abs(coef), kind="stable")
    selected = tuple(int(j) for j in order if fit.mask[r, j])
    edges = target.quartiles.edges_by_column(x.size) if cfg.representation == "quartile" else ()
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
        feature_values=_values(space, x),
        categorical=tuple(int(j) for j in target.background_summary.categorical),
        target_class=fit.label,
        kernel_width=fit.width,
        num_samples=cfg.num_samples,
        reference=ref.row,
        reference_name=ref.name,
        reference_values=_values(space, ref.row),
        edges=edges,
        bin_labels=_bin_labels(space, x, edges),
    )


def _values(space: FeatureSpace, row: FloatArray) -> tuple[str, ...]:
    return tuple(space.format_value(j, float(v)) for j, v in enumerate(row))


def _bin_labels(
    space: FeatureSpace, x: FloatArray, edges: tuple[FloatArray, ...]
) -> tuple[str, ...]:
    """x's quartile of each binned column in words ("" elsewhere, and when not binned)."""
    return tuple(
        bin_label(space.names[j], e, float(x[j]), partial(space.format_value, j)) if e.size else ""
        for j, e in enumerate(edges)
    )
