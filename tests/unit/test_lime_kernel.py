"""LIME's kernel and its default width, checked exactly against the ``lime`` library.

The claim (README "Explain", ``core/explain/lime.py``): π_x(z) = exp(−D²/σ²) with σ
defaulting to 0.75·√d "as in lime", where lime's own default kernel is the square root of
it. The oracle is lime's kernel function at the width lime computes itself.
"""

from __future__ import annotations

import numpy as np
import pytest
from lime.lime_tabular import LimeTabularExplainer

from mlplatform.config import ExplainConfig
from mlplatform.core.explain.neighbourhood import kernel_weights
from mlplatform.core.explain.types import kernel_width


def lime_kernel(d: int):
    """lime's default kernel d -> π (a partial carrying lime's default width) for d columns."""
    rows = np.random.default_rng(d).random((20, d))
    return LimeTabularExplainer(rows, discretize_continuous=False).base.kernel_fn


@pytest.mark.parametrize("d", [1, 2, 5, 8, 13])
def test_default_width_is_lime_default_width(d):
    assert kernel_width(ExplainConfig(), d) == pytest.approx(
        lime_kernel(d).keywords["kernel_width"], rel=1e-12
    )


@pytest.mark.parametrize("d", [1, 5, 8])
def test_default_kernel_is_lime_default_kernel_squared(d):
    dist = np.linspace(0.0, 4.0 * np.sqrt(d), 41)
    ours = kernel_weights(dist**2, kernel_width(ExplainConfig(), d))
    np.testing.assert_allclose(ours, lime_kernel(d)(dist) ** 2, rtol=1e-12, atol=0)


def test_explicit_width_is_the_same_sigma_as_lime():
    dist = np.linspace(0.0, 6.0, 25)
    rows = np.random.default_rng(0).random((20, 3))
    theirs = LimeTabularExplainer(rows, kernel_width=1.7, discretize_continuous=False)
    ours = kernel_weights(dist**2, kernel_width(ExplainConfig(kernel_width=1.7), 3))
    np.testing.assert_allclose(ours, theirs.base.kernel_fn(dist) ** 2, rtol=1e-12, atol=0)
