"""Evidently's DataDriftPreset as an HTML page for people (the numbers that decide alerts come
from :mod:`mlplatform.core.drift`, which reproduces the preset's KS p-values exactly).

Evidently 0.7 API: ``Report([DataDriftPreset(...)]).run(current, reference)`` returns a
snapshot; its ``dict()["metrics"]`` holds one ``ValueDrift`` entry per column whose ``value``
is the column's drift score (the p-value for ``ks`` and ``chisquare``).

    snapshot = run_preset(reference, current, numeric=("area_m2",), categorical=("district",))
    write_report("drift.html", snapshot.get_html_str(as_iframe=False))
    column_scores(snapshot)  # {"area_m2": 0.31, "district": 0.72}
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import pandas as pd

from mlplatform.errors import ReportError
from mlplatform.monitoring.reports import write_report


def run_preset(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: Sequence[str],
    categorical: Sequence[str],
    num_method: str = "ks",
    cat_method: str = "chisquare",
) -> Any:
    """Run ``DataDriftPreset(num_method, cat_method)`` on the named columns; the snapshot."""
    from evidently import DataDefinition, Dataset, Report  # type: ignore[import-untyped]
    from evidently.presets import DataDriftPreset  # type: ignore[import-untyped]

    columns = [*numeric, *categorical]
    definition = DataDefinition(
        numerical_columns=list(numeric), categorical_columns=list(categorical)
    )
    preset = DataDriftPreset(columns=columns, num_method=num_method, cat_method=cat_method)
    try:
        with warnings.catch_warnings():  # e.g. χ² of a category new to the reference: p = 0
            warnings.simplefilter("ignore", RuntimeWarning)
            return Report([preset]).run(
                Dataset.from_pandas(current[columns], data_definition=definition),
                Dataset.from_pandas(reference[columns], data_definition=definition),
            )
    except (ValueError, TypeError, KeyError, ArithmeticError) as exc:
        raise ReportError(f"Evidently DataDriftPreset failed: {exc}") from exc


def column_scores(snapshot: Any) -> dict[str, float]:
    """Per-column drift score (p-value for ks/chisquare) from the snapshot's ``dict()``."""
    scores: dict[str, float] = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if str(config.get("type", "")).endswith("ValueDrift"):
            scores[str(config["column"])] = float(metric["value"])
    return scores


def save_drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: Sequence[str],
    categorical: Sequence[str],
    url: str,
) -> dict[str, float]:
    """Write the preset's HTML to ``url`` (a local path or ``s3://...``, see
    :mod:`mlplatform.monitoring.reports`; KS for numeric, chi-square for categorical columns)
    and return the per-column drift scores it shows."""
    snapshot = run_preset(reference, current, numeric, categorical)
    write_report(url, snapshot.get_html_str(as_iframe=False))
    return column_scores(snapshot)
