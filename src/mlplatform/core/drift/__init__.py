"""Drift statistics: KS for numeric features, chi-square or PSI for categorical ones, concept
drift from labelled traffic, and the health of the serving path.

One module per concept:

- :mod:`.ks`: two-sample Kolmogorov-Smirnov D of every column at once and its p-values, equal
  to ``scipy.stats.ks_2samp`` (``method="asymp"`` and ``"auto"``, exact up to 10 000 rows);
  the exact path's private scipy call is isolated in :mod:`._scipy_private`;
- :mod:`.categorical`: category counts, ``chi2_contingency(table, correction=False)``,
  Evidently's ``chisquare`` and PSI;
- :mod:`.detection` and :mod:`.report`: :func:`detect_drift` mirrors Evidently's
  DataDriftPreset with the settings of the config's ``monitor`` section: a column drifts when
  its p-value is below the threshold (KS: at or below), the dataset drifts when the share of
  drifted columns reaches ``drift_share``;
- :mod:`.concept`: error on labelled traffic against the validation error;
- :mod:`.health`: request errors and latency percentiles.

What cannot be computed raises :class:`mlplatform.errors.DriftError`.

>>> import numpy as np
>>> rng = np.random.default_rng(2)
>>> d, p = ks_test(rng.normal(size=(500, 2)), rng.normal([0.0, 1.0], 1.0, size=(300, 2)))
>>> bool(p[0] > 0.05), bool(p[1] < 1e-6)
(True, True)
"""

from mlplatform.core.drift.categorical import (
    category_counts,
    chi2_contingency_test,
    chisquare_test,
    psi,
)
from mlplatform.core.drift.concept import ConceptDrift, concept_drift, prediction_error
from mlplatform.core.drift.detection import detect_drift
from mlplatform.core.drift.health import SystemHealth, system_health
from mlplatform.core.drift.ks import (
    MAX_EXACT_N,
    TAIL_P,
    ks_pvalues,
    ks_statistics,
    ks_test,
)
from mlplatform.core.drift.report import DriftReport, FeatureDrift

__all__ = [
    "MAX_EXACT_N",
    "TAIL_P",
    "ConceptDrift",
    "DriftReport",
    "FeatureDrift",
    "SystemHealth",
    "category_counts",
    "chi2_contingency_test",
    "chisquare_test",
    "concept_drift",
    "detect_drift",
    "ks_pvalues",
    "ks_statistics",
    "ks_test",
    "prediction_error",
    "psi",
    "system_health",
]
