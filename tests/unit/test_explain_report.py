"""Explanation reports: PNG charts and self-contained, escaped HTML."""

from __future__ import annotations

import html
import re

import numpy as np
import pytest

from mlplatform.config import ExplainConfig
from mlplatform.core.explain import ExplainTarget, describe, explain_instance, explain_model
from mlplatform.core.space import FeatureSpace
from mlplatform.reporting.explain_report import (
    contributions_png,
    importance_png,
    instance_report_html,
    model_report_html,
    slopes_png,
    write_instance_report,
    write_model_report,
)

PNG = b"\x89PNG\r\n\x1a\n"
CFG = ExplainConfig(
    num_samples=300, num_features=2, sample_rows=3, stability_seeds=2, coverage_samples=500
)


@pytest.fixture(scope="module")
def space() -> FeatureSpace:
    return FeatureSpace(
        names=("income", "late_payments", "segment"),
        categorical=(2,),
        categories={2: ("<script>alert(1)</script>", "b&c")},
        offset=np.array([10e6, 0.0, 0.0]),
        scale=np.array([90e6, 5.0, 1.0]),
        units={0: "VND"},
    )


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.column_stack([rng.random(400), rng.integers(0, 6, 400) / 5, rng.integers(0, 2, 400)])


def model(X: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(4 * X[:, 0] - 3 * X[:, 1] + 0.5 * X[:, 2] - 0.5)))


@pytest.fixture(scope="module")
def instance(space, data):
    x = data[data[:, 2] == 0][0]  # segment "<script>…", which must come out escaped
    target = ExplainTarget(model, data, space, "classification", ("reject", "approve"))
    return explain_instance(target, x, CFG, np.random.default_rng(0))


@pytest.fixture(scope="module")
def explained_model(space, data):
    target = ExplainTarget(model, data, space, "classification", ("reject", "approve"))
    return explain_model(target, data, CFG, np.random.default_rng(0))


def test_contributions_png_is_written(instance, tmp_path):
    path = tmp_path / "charts" / "contrib.png"
    data = contributions_png(instance.lime, path)
    assert data.startswith(PNG) and path.read_bytes() == data


def test_importance_png(explained_model):
    assert importance_png(explained_model.global_view).startswith(PNG)
    assert importance_png(explained_model.global_view, by="contribution").startswith(PNG)


def test_slopes_png(instance):
    assert slopes_png(instance.lime).startswith(PNG)


def test_pages_word_contributions_as_the_core_does(instance, explained_model):
    """The HTML pages (the KFP explain artifact is the model page) reuse ``describe``."""
    lime = instance.lime
    j = lime.by_contribution()[0]
    text = describe(lime.label(j), float(lime.contribution_values[j]), lime.reference_name)
    assert html.escape(text) in instance_report_html(instance)
    assert text == lime.to_dict()["contributions"][0]["text"]  # type: ignore[index]
    page = model_report_html(explained_model)
    assert "mean |contribution|" in page and "mean |β|" in page
    assert "compared with the average row" in page


def test_instance_report_is_self_contained_and_escaped(instance, tmp_path):
    page = instance_report_html(instance, title="Row <1>")
    assert "<title>Row &lt;1&gt;</title>" in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert not re.search(r'src="(?!data:image/png;base64,)', page)  # nothing fetched
    assert "Anchor rule" in page and " → " in page and "VND" in page
    out = write_instance_report(instance, tmp_path / "r" / "instance.html")
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_model_report_lists_metrics_tree_and_rows(explained_model, tmp_path):
    page = model_report_html(explained_model)
    assert "lime_fidelity_r2_mean" in page and "anchor_precision_mean" in page
    assert "IF " in page and "THEN" in page
    assert page.count("<tr>") >= len(explained_model.instances) + 1
    assert "<script>" not in page
    assert write_model_report(explained_model, tmp_path / "m.html").exists()
