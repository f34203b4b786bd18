"""`make demo`: the local loop, end to end, as far as the platform has grown."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from rich.console import Console

from mlplatform.config import PlatformConfig, load_config
from mlplatform.core.explain import describe
from mlplatform.core.model import LinearModel
from mlplatform.core.training import split_frame
from mlplatform.reporting.console import epoch_progress, print_metrics
from mlplatform.reporting.explain_report import (
    contributions_png,
    write_instance_report,
    write_model_report,
)
from mlplatform.stages import generate_data, train_job
from mlplatform.stages.examples import article_example, compare_losses_job
from mlplatform.stages.explain import explain_model_job, explain_row_job
from mlplatform.stages.io import read_data

DEMO_CONFIGS = ("configs/credit-risk.yaml",)


def _explain(cfg: PlatformConfig, model: LinearModel, console: Console) -> list[str]:
    """Explain one test row and a sample of rows; return report lines."""
    splits = split_frame(cfg, read_data(cfg.data_path))
    rng = np.random.default_rng(0)
    one = explain_row_job(cfg, model, splits.train, splits.test.head(1), rng)
    console.print(one.summary(), highlight=False)
    sample = explain_model_job(cfg, model, splits.train, splits.test, rng)
    quality = sample.as_metrics()
    keys = (
        "lime_fidelity_r2_mean",
        "lime_stability_jaccard_mean",
        "anchor_precision_mean",
        "anchor_coverage_mean",
        "global_tree_fidelity",
    )
    console.print("explanation quality: " + ", ".join(f"{k} {quality[k]:.3f}" for k in keys))
    out = cfg.model_dir / "explanations"
    html = write_model_report(sample, out / "model_report.html", cfg.model_name)
    row_html = write_instance_report(one, out / "test_row_0.html", f"{cfg.model_name}: test row")
    contributions_png(one.lime, out / "test_row_0_contributions.png")
    readings = [describe(k, c, one.lime.reference_name) for k, c in one.lime.contributions()]
    return [
        f"- explanation: `{row_html}`, model report: `{html}`",
        "- test row 0, what pulls its prediction up or down:",
        *[f"  - {line}" for line in readings[:3]],
        "- quality: " + ", ".join(f"{k} {quality[k]:.3f}" for k in keys),
    ]


def _closed_loop(out: Path, console: Console) -> list[str]:
    """house-price through the whole loop: train, serve, drift, alert, retrain, canary, promote."""
    from mlplatform.demo.loop import run_loop
    from mlplatform.reporting.lineage import lineage_table

    console.rule("4/4 the closed loop: house-price (a few minutes)")
    work = (out / "loop").resolve()
    shutil.rmtree(work, ignore_errors=True)  # every demo starts from a fresh registry
    result = run_loop(work, Path.cwd(), lambda line: console.print(line, highlight=False))
    console.print(lineage_table(result.lineage))
    console.print(f"failed client requests during the whole loop: {result.failed_requests}")
    reports = [_viewable(p) for p in result.reports]
    console.print("reports written:")
    for path in reports:
        console.print(f"  {path}", highlight=False)
    return [
        "## The closed loop (house-price)",
        "",
        f"v{result.versions['v1']} trained and served; drift alert {result.alert_id}; "
        f"v{result.versions['v2']} retrained on the new data and {result.rollout}.",
        "",
        *[f"- `{p}`" for p in reports],
    ]


def _viewable(path: Path) -> Path:
    """KFP names an HTML artifact after its output (``explain/report``); a browser wants
    ``.html``, so such a file gets a copy that has it."""
    if path.suffix or not path.is_file():
        return path
    copy = path.with_name(f"{path.name}.html")
    shutil.copyfile(path, copy)
    return copy


def run_demo(out: Path, console: Console, configs: tuple[str, ...] = DEMO_CONFIGS) -> Path:
    """Train every demo model, compare the losses, and write ``<out>/REPORT.md``."""
    console.rule("1/4 the article's worked example")
    r = article_example()
    console.print(f"θ after 1000 epochs: w = {r.weights[0]:.6f}, b = {r.bias:.6f}")
    lines = [
        "# mlplatform demo report",
        "",
        f"Article example: w = {r.weights[0]:.6f}, b = {r.bias:.6f}",
        "",
    ]
    for i, path in enumerate(configs):
        cfg = load_config(path).with_overrides(artifacts_dir=str(out))  # type: ignore[arg-type]
        console.rule(
            f"2/4 {cfg.model_name}: data → normalize → train → explain ({i + 1}/{len(configs)})"
        )
        data = generate_data(cfg)
        console.print(f"data: {data}")
        with epoch_progress(f"train {cfg.model_name}", cfg.train.epochs) as on_epoch:
            outputs = train_job(cfg, data, on_epoch)
        print_metrics(f"{cfg.model_name} ({cfg.train.loss})", outputs.outcome.metrics)
        test = outputs.outcome.metrics["test"]
        lines += [
            f"## {cfg.model_name}",
            "",
            "test: " + ", ".join(f"{k} {v:,.4g}" for k, v in test.items()),
            "",
        ]
        lines += [f"- {k}: `{p}`" for k, p in outputs.files.items()]
        lines += [*_explain(cfg, outputs.outcome.model, console), ""]
    console.rule("3/4 MSE vs MAE vs Huber under outliers")
    files = compare_losses_job(out / "loss-comparison")
    console.print(files["table"].read_text(encoding="utf-8"))
    lines += ["## Loss comparison", "", files["table"].read_text(encoding="utf-8")]
    lines += [f"- {k}: `{p}`" for k, p in files.items()]
    lines += _closed_loop(out, console)
    report = out / "REPORT.md"
    report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    console.print(f"\nreport: {report}")
    return report
