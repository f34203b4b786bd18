"""`make demo`: the local loop, end to end, as far as the platform has grown."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from mlplatform.cli import _print_metrics, epoch_progress
from mlplatform.config import load_config
from mlplatform.jobs import article_example, compare_losses_job, generate_data, train_job

DEMO_CONFIGS = ("configs/house-price.yaml", "configs/credit-risk.yaml")


def run_demo(out: Path, console: Console, configs: tuple[str, ...] = DEMO_CONFIGS) -> Path:
    """Train every demo model, compare the losses, and write ``<out>/REPORT.md``."""
    console.rule("1/3 the article's worked example")
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
        console.rule(f"2/3 {cfg.model_name}: data → normalize → train ({i + 1}/{len(configs)})")
        data = generate_data(cfg)
        console.print(f"data: {data}")
        with epoch_progress(f"train {cfg.model_name}", cfg.train.epochs) as on_epoch:
            outputs = train_job(cfg, data, on_epoch)
        _print_metrics(f"{cfg.model_name} ({cfg.train.loss})", outputs.outcome.metrics)
        test = outputs.outcome.metrics["test"]
        lines += [
            f"## {cfg.model_name}",
            "",
            "test: " + ", ".join(f"{k} {v:,.4g}" for k, v in test.items()),
            "",
        ]
        lines += [f"- {k}: `{p}`" for k, p in outputs.files.items()] + [""]
    console.rule("3/3 MSE vs MAE vs Huber under outliers")
    files = compare_losses_job(out / "loss-comparison")
    console.print(files["table"].read_text(encoding="utf-8"))
    lines += ["## Loss comparison", "", files["table"].read_text(encoding="utf-8")]
    lines += [f"- {k}: `{p}`" for k, p in files.items()]
    report = out / "REPORT.md"
    report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    console.print(f"\nreport: {report}")
    return report
