"""The one place the drift core touches a private scipy routine.

:func:`attempt_exact_ks` calls ``scipy.stats._stats_py._attempt_exact_2kssamp``, the routine
``scipy.stats.ks_2samp`` itself runs for ``method="exact"`` (and for ``"auto"`` up to 10 000
rows). scipy has no public function that takes a precomputed D: ``ks_2samp`` wants the raw
samples and recomputes D per column, while :func:`mlplatform.core.drift.ks.ks_statistics` has
already found D for every column at once. Calling the same routine keeps our p-values equal to
scipy's and Evidently's bit for bit.

Written against scipy 1.17.1 (``requirements.lock``), where its signature is
``_attempt_exact_2kssamp(n1, n2, g, d, alternative) -> (success, d, prob)``. Being private, it
may move or change in any scipy release: ``tests/unit/test_drift_scipy_private.py`` checks it
against the public ``ks_2samp(..., method="exact")`` and fails naming it.
"""

from __future__ import annotations

import math

#: Dotted path of the private routine (named by the test when it breaks).
PRIVATE_ROUTINE = "scipy.stats._stats_py._attempt_exact_2kssamp"


def attempt_exact_ks(d: float, n: int, m: int) -> tuple[bool, float, float]:
    """scipy's exact two-sided P(D_{n,m} ≥ D) for samples of n and m rows.

    D is first rounded to the lattice h / lcm(n, m), h = round(D · lcm(n, m)), as scipy
    reports it. Returns (ok, D on the lattice, p); ok is False when the exact sum overflows
    (the caller then falls back to the asymptotic p of the rounded D, as scipy does).
    """
    from scipy.stats import _stats_py

    ok, d_lattice, p = _stats_py._attempt_exact_2kssamp(n, m, math.gcd(n, m), d, "two-sided")
    return bool(ok), float(d_lattice), float(p)
