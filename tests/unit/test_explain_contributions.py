"""Contributions read at the point: c_j = β_j (u_j(x) − u_j(b)), g(x) = g(b) + Σ c_j.

Oracles: a known linear model (its contributions are w_j (x_j − b_j)), the identity of the
linear surrogate, and `make demo`'s credit model read off the rendered chart's bars.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlplatform.config import ExplainConfig, load_config
from mlplatform.core.explain import ExplainTarget, describe, explain_instance, lime_explain_batch
from mlplatform.core.space import FeatureSpace
from mlplatform.core.training import generate, split_frame, train_model
from mlplatform.reporting.explain_report import contributions_figure, instance_report_html
from mlplatform.stages.explain import explain_row_job

ROOT = Path(__file__).resolve().parents[2]
W = np.array([3.0, -2.0, 0.5, 1.5])
C = 0.7


def linear(X: np.ndarray) -> np.ndarray:
    return X[:, :4] @ W + C + 0.4 * (X[:, 4] == 1)


@pytest.fixture(scope="module")
def space() -> FeatureSpace:
    return FeatureSpace(
        names=("a", "b", "c", "d", "segment"), categorical=(4,), categories={4: ("p", "q", "r")}
    )


@pytest.fixture(scope="module")
def background() -> np.ndarray:
    rng = np.random.default_rng(3)
    B = rng.random((500, 5))
    B[:, 4] = rng.choice(3, size=500, p=[0.5, 0.3, 0.2])
    return B


SEEDS = 8


@pytest.mark.parametrize("reference", ["mean", "median"])
def test_linear_model_contributions_are_w_times_distance_to_reference(space, background, reference):
    """c_j = w_j (x_j − b_j) within the sampling error, measured over independent seeds.

    f is exactly linear in the numeric columns; its categorical term is not a function of
    LIME's "same segment as x" input, so it leaves a residual that moves β̂ from seed to
    seed. The bound is 5 standard errors of the mean over seeds (sd pooled over rows).
    """
    cfg = ExplainConfig(
        num_samples=2000,
        feature_selection="none",
        num_features=5,
        ridge_alpha=0.0,
        reference=reference,
    )
    target = ExplainTarget(linear, background, space, "regression")
    rows = background[:10]
    runs = [lime_explain_batch(target, rows, cfg, np.random.default_rng(s)) for s in range(SEEDS)]
    got = np.stack([[e.contribution_values[:4] for e in run] for run in runs])  # (S, R, 4)
    centre = np.mean if reference == "mean" else np.median
    b = centre(background[:, :4], axis=0)
    expected = W * (rows[:, :4] - b)
    sd = np.sqrt(got.var(axis=0, ddof=1).mean(axis=0))  # (4,) pooled over rows
    assert np.all(np.abs(got.mean(axis=0) - expected) <= 5 * sd / np.sqrt(SEEDS) + 1e-9)
    assert np.all(sd <= 0.05 * np.abs(W))  # and the sampling error itself is small
    found = runs[0]
    for e in found:
        assert e.reference_name == f"the {'average' if reference == 'mean' else 'median'} row"
        np.testing.assert_allclose(e.reference[:4], b)
        assert e.reference[4] == 0.0  # the most frequent category
        total = e.reference_prediction + e.contribution_values.sum()
        assert total == pytest.approx(e.local_prediction, abs=1e-10)


@pytest.mark.parametrize("representation", ["continuous", "quartile"])
def test_contributions_add_up_to_the_surrogate(space, background, representation):
    cfg = ExplainConfig(num_samples=500, num_features=3, representation=representation)
    target = ExplainTarget(lambda X: np.tanh(linear(X)), background, space, "regression")
    for e in lime_explain_batch(target, background[:8], cfg, np.random.default_rng(1)):
        assert e.representation == representation
        assert e.reference_prediction + e.contribution_values.sum() == pytest.approx(
            e.local_prediction, abs=1e-10
        )
        assert e.predict(e.reference[None, :])[0] == pytest.approx(e.reference_prediction)
        outside = np.setdiff1d(np.arange(5), e.selected)
        assert np.all(e.contribution_values[outside] == 0.0)


def test_a_given_reference_row_is_used_and_named(space, background):
    b = np.array([0.5, 0.5, 0.5, 0.5, 2.0])
    given = (0.5, 0.5, 0.5, 0.5, "r")  # encoded as b by core.training.explain_target
    cfg = ExplainConfig(num_samples=500, feature_selection="none", num_features=5, reference=given)
    target = ExplainTarget(
        linear, background, space, "regression", entity="client", reference_row=b
    )
    e = lime_explain_batch(target, background[:1], cfg, np.random.default_rng(0))[0]
    np.testing.assert_array_equal(e.reference, b)
    assert e.reference_name == "the reference client"
    doc = e.to_dict()
    assert doc["reference"]["name"] == "the reference client"  # type: ignore[index]


def test_wording_names_direction_and_reference():
    assert describe("x = 1", 0.25, "the average applicant") == (
        "x = 1 pulls up by 0.25 compared with the average applicant"
    )
    assert "pulls down by 0.1 " in describe("x = 1", -0.1, "the average applicant")
    assert "no effect" in describe("x = 1", 0.0, "the average applicant")


@pytest.fixture(scope="module")
def credit(tmp_path_factory: pytest.TempPathFactory):
    """`make demo`'s credit model: configs/credit-risk.yaml, trained as the demo trains it."""
    tmp = tmp_path_factory.mktemp("credit")
    cfg = load_config(ROOT / "configs/credit-risk.yaml").with_overrides(artifacts_dir=str(tmp))
    splits = split_frame(cfg, generate(cfg.data))
    return cfg, train_model(cfg, splits).model, splits


def test_zero_late_payments_pull_the_approval_up(credit):
    cfg, model, splits = credit
    row = splits.test[splits.test["late_payments"] == 0].head(1)
    ex = explain_row_job(cfg, model, splits.train, row, np.random.default_rng(0))
    j = ex.lime.feature_names.index("late_payments")
    assert ex.lime.coefficients[j] < 0  # more late payments lower the approval…
    assert ex.lime.contribution_values[j] > 0  # …so none pull this applicant's approval up
    assert ex.lime.reference_name == "the average applicant"
    fig = contributions_figure(ex.lime)
    ax = fig.axes[0]
    names = {
        round(float(y)): t.get_text()
        for y, t in zip(ax.get_yticks(), ax.get_yticklabels(), strict=True)
    }
    bars = {names[round(p.get_y() + p.get_height() / 2)]: p.get_width() for p in ax.patches}
    assert bars["late_payments = 0"] > 0  # the bar drawn for it points right (pulls up)
    assert len(bars) == len(ex.lime.selected)
    page = instance_report_html(ex)
    assert "late_payments = 0 pulls up by" in page and "the average applicant" in page


def test_quartile_representation_reads_like_lime(credit):
    cfg, model, splits = credit
    cfg = cfg.with_overrides(explain={"representation": "quartile"})
    row = splits.test[splits.test["late_payments"] == 0].head(1)
    ex = explain_row_job(cfg, model, splits.train, row, np.random.default_rng(0))
    j = ex.lime.feature_names.index("late_payments")
    assert ex.lime.label(j) == "late_payments <= 0"
    assert ex.lime.coefficients[j] > 0 and ex.lime.contribution_values[j] >= 0
    assert 0 <= ex.quality.lime_fidelity_r2 <= 1 and ex.quality.lime_stability_jaccard > 0


def test_summary_leads_with_contributions(space, background):
    cfg = ExplainConfig(num_samples=300, num_features=2, stability_seeds=2, coverage_samples=300)
    target = ExplainTarget(linear, background, space, "regression", entity="client")
    text = explain_instance(target, background[0], cfg, np.random.default_rng(0)).summary()
    lines = text.splitlines()
    assert lines[1].startswith("What pulls this prediction up or down, compared with the average")
    assert "compared with the average client" in lines[2] and "Slopes β" in text


def test_a_raw_reference_row_from_the_config_is_encoded(credit):
    cfg, model, splits = credit
    cfg = cfg.with_overrides(explain={"reference": [40, 20_000_000, 0.2, 0, 5]})
    ex = explain_row_job(cfg, model, splits.train, splits.test.head(1), np.random.default_rng(0))
    assert ex.lime.reference_name == "the reference applicant"
    assert ex.lime.reference_values[:2] == ("40", "20,000,000 VND")
    assert ex.lime.reference_prediction + ex.lime.contribution_values.sum() == pytest.approx(
        ex.lime.local_prediction
    )
