"""The private scipy routine behind our exact KS p-values still exists and still agrees with
the public ``scipy.stats.ks_2samp(..., method="exact")``.

If a test here fails after a scipy upgrade, scipy changed or removed the routine named in the
message: adapt ``src/mlplatform/core/drift/_scipy_private.py`` (the only caller) or pin scipy
back to the version in ``requirements.lock``.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import numpy as np
import pytest
import scipy
from scipy import stats

from mlplatform.core.drift._scipy_private import PRIVATE_ROUTINE, attempt_exact_ks

LOCK = Path(__file__).resolve().parents[2] / "requirements.lock"
_PIN = re.search(r"^scipy==(\S+)$", LOCK.read_text(encoding="utf-8"), re.MULTILINE)
PINNED = _PIN.group(1) if _PIN else "(not found in requirements.lock)"
BROKEN = (
    f"{PRIVATE_ROUTINE} (written against scipy {PINNED}, pinned in requirements.lock; "
    f"installed: scipy {scipy.__version__})"
)

_rng = np.random.default_rng(7)
CASES = {
    "distinct, n != m": ([0.1, 0.5, 0.9, 1.3, 2.0], [0.3, 0.7, 1.1, 2.5, 3.0, 3.1, 4.0]),
    "ties, n != m": ([1, 2, 2, 3, 3, 3, 4], [2, 2, 3, 5, 5, 6]),
    "ties, n == m": ([0, 0, 1, 1, 2, 2], [1, 1, 2, 2, 3, 3]),
    "n == m, shifted": (list(range(1, 9)), list(range(5, 13))),
    "separated (tiny p)": (list(range(10)), list(range(10, 30))),
    "identical (D = 0)": ([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]),
    "one row": ([0.5], [0.1, 0.2, 0.9]),
    "heavy ties, 40 vs 25": (
        list(_rng.integers(0, 5, 40)),
        list(_rng.integers(1, 6, 25)),
    ),
}


def test_private_routine_exists_with_the_expected_signature() -> None:
    module_name, _, attr = PRIVATE_ROUTINE.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:  # pragma: no cover - only on a scipy that moved it
        pytest.fail(f"{BROKEN}: module {module_name} is gone ({exc})")
    routine = getattr(module, attr, None)
    assert callable(routine), f"{BROKEN} no longer exists"
    params = list(inspect.signature(routine).parameters)
    assert params == ["n1", "n2", "g", "d", "alternative"], f"{BROKEN} changed: {params}"


@pytest.mark.parametrize(("ref", "cur"), CASES.values(), ids=CASES.keys())
def test_wrapper_equals_public_exact_ks_2samp(ref: list[float], cur: list[float]) -> None:
    r, c = np.asarray(ref, np.float64), np.asarray(cur, np.float64)
    raw_d = float(stats.ks_2samp(r, c, method="asymp").statistic)  # D before lattice rounding
    oracle = stats.ks_2samp(r, c, method="exact")
    ok, d, p = attempt_exact_ks(raw_d, r.size, c.size)
    assert ok, f"{BROKEN} reports failure for n={r.size}, m={c.size}, D={raw_d}"
    assert abs(d - oracle.statistic) <= 1e-12, f"{BROKEN}: D {d} != {oracle.statistic}"
    assert abs(p - oracle.pvalue) <= 1e-12 * max(1.0, oracle.pvalue), (
        f"{BROKEN}: p {p!r} != ks_2samp exact p {oracle.pvalue!r} (n={r.size}, m={c.size})"
    )
