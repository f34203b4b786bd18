"""Explanation reports: contribution and slope bar charts (PNG) and self-contained HTML.

Every page leads with what pulls a prediction up or down compared with the reference
row (:mod:`mlplatform.core.explain.reference`, whose :func:`describe` words every
reading), and keeps the surrogate's slopes below.

Charts are drawn on a bare matplotlib ``Figure`` with the Agg canvas (no pyplot state,
no display). HTML pages embed their charts as base64 PNG and escape every text, so a
page is one file that can be attached to a run or served as is.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mlplatform.core.explain import (
    GlobalView,
    InstanceExplanation,
    LimeExplanation,
    ModelExplanation,
    describe,
)

_POS, _NEG = "#2ca02c", "#d62728"
_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:60em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em}
th{background:#f4f4f4;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}
.rule{font-size:1.15em;background:#f7f7ff;border-left:4px solid #66c;padding:.6em 1em}
pre{background:#f7f7f7;padding:.8em;overflow-x:auto}.warn{color:#b00}"""


def _png(fig: Figure, path: Path | None) -> bytes:
    buf = io.BytesIO()
    FigureCanvasAgg(fig)  # attach the Agg canvas: no pyplot, no display
    fig.savefig(buf, format="png")
    data = buf.getvalue()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return data


def _barh(labels: Sequence[str], values: Sequence[float], title: str, xlabel: str) -> Figure:
    """Horizontal bars, first label on top, green for positive and red for negative."""
    fig = Figure(figsize=(7.0, 0.45 * len(labels) + 1.4), dpi=100)
    ax = fig.add_subplot()
    pos = list(range(len(labels)))[::-1]
    ax.barh(pos, values, color=[_POS if v >= 0 else _NEG for v in values])
    ax.set_yticks(pos, labels=list(labels))
    ax.axvline(0.0, color="#444", lw=0.8)
    ax.set(title=title, xlabel=xlabel)
    fig.tight_layout()
    return fig


def contributions_figure(expl: LimeExplanation) -> Figure:
    """Bars of the contributions c_j (largest |c| on top): green pulls up, red pulls down."""
    items = expl.contributions()
    title = (
        f"What pulls f(x) = {expl.model_prediction:.3g} up or down\n"
        f"compared with {expl.reference_name} (g = {expl.reference_prediction:.3g})"
    )
    xlabel = "contribution c_j to g(x) − g(reference)"
    return _barh([k for k, _ in items], [v for _, v in items], title, xlabel)


def contributions_png(expl: LimeExplanation, path: Path | None = None) -> bytes:
    """:func:`contributions_figure` as PNG; written to ``path`` if given."""
    return _png(contributions_figure(expl), path)


def slopes_png(expl: LimeExplanation, path: Path | None = None) -> bytes:
    """Bar chart of the surrogate's slopes β_j (largest |β| on top)."""
    items = expl.slopes()
    unit = "per normalized unit" if expl.representation == "continuous" else "in x's bin"
    fig = _barh([k for k, _ in items], [v for _, v in items], "LIME slopes β", f"β ({unit})")
    return _png(fig, path)


def importance_png(
    view: GlobalView, path: Path | None = None, by: Literal["slope", "contribution"] = "slope"
) -> bytes:
    """Bar chart of mean |β| (or mean |c|, ``by="contribution"``) per feature."""
    items = view.ranking(by)
    what = "mean |β|" if by == "slope" else "mean |contribution|"
    fig = _barh([k for k, _ in items], [v for _, v in items], f"{what} per feature", what)
    return _png(fig, path)


def _img(data: bytes, alt: str) -> str:
    b64 = base64.b64encode(data).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def _table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _cell(v: object) -> str:
    if isinstance(v, float):
        return f'<td class="num">{v:.4g}</td>'
    return f"<td>{html.escape(str(v))}</td>"


def _page(title: str, body: str) -> str:
    t = html.escape(title)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{t}</title>'
        f"<style>{_CSS}</style></head><body><h1>{t}</h1>{body}</body></html>\n"
    )


def contributions_html(lime: LimeExplanation) -> str:
    """The contributions in words and numbers, g(x) = g(b) + Σ c_j, and the slopes."""
    c = lime.contribution_values
    ref, gb = lime.reference_name, lime.reference_prediction
    rows = [
        [lime.label(j), float(c[j]), describe(lime.label(j), float(c[j]), ref)]
        for j in lime.by_contribution()
    ]
    ref_values = zip(lime.feature_names, lime.feature_values, lime.reference_values, strict=False)
    return "".join(
        [
            f"<h2>What pulls this prediction up or down, compared with {html.escape(ref)}</h2>",
            _img(contributions_png(lime), "LIME contributions"),
            _table(["feature", "contribution c_j", "reading"], rows),
            f"<p>g(x) = g(reference) + Σ c_j: {gb:.4g} + {float(c.sum()):+.4g} = "
            f"{lime.local_prediction:.4g} (the model: f(x) = {lime.model_prediction:.4g}).</p>",
            _table(["feature", "this row", html.escape(ref)], ref_values),
            f"<h3>Slopes β ({html.escape(lime.representation)} representation)</h3>",
            _table(["feature", "β"], lime.slopes()),
        ]
    )


def instance_report_html(
    ex: InstanceExplanation, title: str = "Explanation of one prediction"
) -> str:
    """One row: LIME contributions (chart, words, slopes), the anchor, the quality."""
    lime, anchor = ex.lime, ex.anchor
    warn = "" if anchor.valid else '<p class="warn">No rule reached the precision target.</p>'
    parts = [
        contributions_html(lime),
        "<h2>Local surrogate (LIME)</h2>",
        _table(
            ["f(x)", "g(x)", "intercept", "weighted R²", "kernel width"],
            [
                [
                    lime.model_prediction,
                    lime.local_prediction,
                    lime.intercept,
                    lime.score_r2,
                    lime.kernel_width,
                ]
            ],
        ),
        "<h2>Anchor rule</h2>",
        f'<p class="rule">{html.escape(str(anchor))}</p>{warn}',
        _table(
            ["precision lower bound", "rule length", "samples", "model calls"],
            [[anchor.precision_lower, anchor.length, anchor.num_samples, anchor.model_calls]],
        ),
        "<h2>Explanation quality</h2>",
        _table(["metric", "value"], ex.quality.as_dict().items()),
    ]
    return _page(title, "".join(parts))


def _strongest(lime: LimeExplanation) -> str:
    """The contribution that moves the row most, in words."""
    order = lime.by_contribution()
    if not order:
        return ""
    j = order[0]
    return describe(lime.label(j), float(lime.contribution_values[j]), lime.reference_name)


def model_report_html(model: ModelExplanation, title: str = "Model explanations") -> str:
    """A model: quality metrics, feature importances, the surrogate tree, per-row rules."""
    view = model.global_view
    rows = [
        [
            i,
            _strongest(inst.lime),
            inst.anchor.rule,
            inst.anchor.outcome,
            "yes" if inst.anchor.valid else "no",
            inst.quality.anchor_precision,
            inst.quality.anchor_coverage,
            inst.quality.lime_fidelity_r2,
        ]
        for i, inst in enumerate(model.instances)
    ]
    moved = dict(view.ranking("contribution"))
    importance = sorted(((k, moved[k], b) for k, b in view.ranking()), key=lambda r: -r[1])
    parts = [
        "<h2>Explanation quality</h2>",
        _table(["metric", "value"], model.as_metrics().items()),
        "<h2>Global view: how much each feature moves predictions, and its slope</h2>",
        f"<p>Mean |contribution| over the explained rows, compared with "
        f"{html.escape(view.reference_name)}; mean |β| is the surrogate's slope.</p>",
        _img(importance_png(view, by="contribution"), "mean |contribution| per feature"),
        _img(importance_png(view), "feature importance"),
        _table(["feature", "mean |contribution|", "mean |β|"], importance),
        f"<h2>Depth-3 surrogate tree ({html.escape(view.fidelity_metric)} vs the model: "
        f"{view.tree_fidelity:.3f})</h2>",
        "<p>Fitted to the model's predictions on the background rows; a leaf's value is the "
        "mean model output there (P(class 1) for a classifier).</p>",
        f"<pre>{html.escape(chr(10).join(view.tree_rules))}</pre>",
        "<h2>Explained rows</h2>",
        _table(
            [
                "row",
                "what moves it most",
                "anchor",
                "outcome",
                "τ met",
                "precision",
                "coverage",
                "fidelity R²",
            ],
            rows,
        ),
    ]
    return _page(title, "".join(parts))


def write_instance_report(ex: InstanceExplanation, path: Path, title: str | None = None) -> Path:
    """Write :func:`instance_report_html` to ``path`` (directories created)."""
    text = instance_report_html(ex) if title is None else instance_report_html(ex, title)
    return _write(path, text)


def write_model_report(model: ModelExplanation, path: Path, title: str | None = None) -> Path:
    """Write :func:`model_report_html` to ``path`` (directories created)."""
    text = model_report_html(model) if title is None else model_report_html(model, title)
    return _write(path, text)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
