"""Explanation reports: a contributions bar chart (PNG) and self-contained HTML pages.

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

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mlplatform.core.explain import (
    GlobalView,
    InstanceExplanation,
    LimeExplanation,
    ModelExplanation,
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


def contributions_png(expl: LimeExplanation, path: Path | None = None) -> bytes:
    """Bar chart of the surrogate's β_j (largest |β| on top); written to ``path`` if given."""
    items = expl.contributions()
    title = f"LIME: f(x) = {expl.model_prediction:.4g}, g(x) = {expl.local_prediction:.4g}"
    fig = _barh([k for k, _ in items], [v for _, v in items], title, "β (per normalized unit)")
    return _png(fig, path)


def importance_png(view: GlobalView, path: Path | None = None) -> bytes:
    """Bar chart of mean |β| per feature over the explained rows."""
    items = view.ranking()
    fig = _barh([k for k, _ in items], [v for _, v in items], "Mean |β| per feature", "mean |β|")
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


def instance_report_html(
    ex: InstanceExplanation, title: str = "Explanation of one prediction"
) -> str:
    """One row: its values, LIME contributions (chart and table), the anchor, the quality."""
    lime, anchor = ex.lime, ex.anchor
    warn = "" if anchor.valid else '<p class="warn">No rule reached the precision target.</p>'
    parts = [
        _table(["feature", "value"], zip(lime.feature_names, lime.feature_values, strict=True)),
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
        _img(contributions_png(lime), "LIME contributions"),
        _table(["feature = value", "β"], lime.contributions()),
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


def model_report_html(model: ModelExplanation, title: str = "Model explanations") -> str:
    """A model: quality metrics, feature importances, the surrogate tree, per-row rules."""
    view = model.global_view
    rows = [
        [
            i,
            ", ".join(inst.lime.feature_names[j] for j in inst.lime.top_features(3)),
            inst.anchor.rule,
            inst.anchor.outcome,
            "yes" if inst.anchor.valid else "no",
            inst.quality.anchor_precision,
            inst.quality.anchor_coverage,
            inst.quality.lime_fidelity_r2,
        ]
        for i, inst in enumerate(model.instances)
    ]
    parts = [
        "<h2>Explanation quality</h2>",
        _table(["metric", "value"], model.as_metrics().items()),
        "<h2>Global view: mean |β| per feature</h2>",
        _img(importance_png(view), "feature importance"),
        _table(["feature", "mean |β|"], view.ranking()),
        f"<h2>Depth-3 surrogate tree ({html.escape(view.fidelity_metric)} vs the model: "
        f"{view.tree_fidelity:.3f})</h2>",
        "<p>Fitted to the model's predictions on the background rows; a leaf's value is the "
        "mean model output there (P(class 1) for a classifier).</p>",
        f"<pre>{html.escape(chr(10).join(view.tree_rules))}</pre>",
        "<h2>Explained rows</h2>",
        _table(
            [
                "row",
                "top LIME features",
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
