"""The README's "Extend the platform" example: reuse the platform's components from their
YAML files and wire in a team's own component (``components/data_quality.py``).

    data (platform) → data_quality (yours) → normalize (platform)

``python -m pipelines.extended_pipeline`` compiles it (``pipelines/extended_pipeline.yaml``, to
upload in the KFP UI; not committed); ``--run`` also runs it locally with kfp.local, as
``make pipeline-extended`` does.
"""

import argparse
import json
import re
import sys
from contextlib import redirect_stdout
from pathlib import Path

from components.data_quality import data_quality
from kfp import compiler, components, dsl

ROOT = Path(__file__).resolve().parents[1]
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # kfp.local colours its messages
COMPONENTS = ROOT / "components"
data_op = components.load_component_from_file(str(COMPONENTS / "data.yaml"))
normalize_op = components.load_component_from_file(str(COMPONENTS / "normalize.yaml"))


@dsl.pipeline(name="mlplatform-extended", description="Platform data + a data-quality gate.")
def extended_pipeline(config_json: str, min_rows: int = 100) -> None:
    d = data_op(config_json=config_json)
    q = data_quality(dataset=d.outputs["dataset"], min_rows=min_rows, max_missing_share=0.01)
    n = normalize_op(config_json=config_json, dataset=d.outputs["dataset"])
    n.after(q)  # normalize only data that passed the team's check


def run_locally(config: Path, min_rows: int) -> Path:
    """Run the pipeline with kfp.local for ``config`` (its data generated first if missing);
    the tasks' logs go to ``run.log`` beside the run. Returns the run's folder."""
    from kfp import local

    from mlplatform.config import load_config
    from mlplatform.errors import PipelineRunError
    from mlplatform.orchestration.runner import absolute, quiet_local_runner
    from mlplatform.stages import generate_data

    cfg = absolute(load_config(config), Path.cwd())
    if not cfg.data_path.exists():
        generate_data(cfg)
    root = cfg.artifacts_dir / "extended-runs"
    root.mkdir(parents=True, exist_ok=True)
    before = set(root.iterdir())
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    log = root / "run.log"
    start = log.stat().st_size if log.exists() else 0
    try:
        with log.open("a", encoding="utf-8") as out, redirect_stdout(out), quiet_local_runner():
            extended_pipeline(config_json=cfg.to_json(), min_rows=min_rows)
    except RuntimeError as exc:  # kfp.local: "Pipeline ... finished with status FAILURE ..."
        with log.open("rb") as fh:
            why = failure_reason(fh.read()[start:].decode("utf-8", "replace"))
        first = ANSI.sub("", str(exc).splitlines()[0]).rstrip(".")
        raise PipelineRunError(f"{first}{why} (task logs: {log})") from None
    return max(set(root.iterdir()) - before - {log}, key=lambda p: p.stat().st_mtime)


def failure_reason(log: str) -> str:
    """': <the error a task raised>' from the tasks' log (the last one), or ''."""
    raised = re.findall(r"^\s*\w+Error: (.+)$", ANSI.sub("", log), re.M)
    return f": {raised[-1]}" if raised else ""


def quality_metrics(run: Path) -> list[str]:
    """The data-quality task's metrics (kfp.local keeps them in its executor output)."""
    out = json.loads((run / "data-quality" / "executor_output.json").read_text(encoding="utf-8"))
    (report,) = out["artifacts"]["report"]["artifacts"]
    return [f"{name} = {value:g}" for name, value in report["metadata"].items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.extended_pipeline")
    parser.add_argument("--run", action="store_true", help="also run it locally (kfp.local)")
    parser.add_argument("--config", type=Path, default=Path("configs/house-price.yaml"))
    parser.add_argument("--min-rows", type=int, default=100, help="the data-quality floor")
    args = parser.parse_args(argv)
    out = Path(__file__).with_name("extended_pipeline.yaml")
    compiler.Compiler().compile(extended_pipeline, str(out))
    print(f"compiled → {out.relative_to(ROOT)}")
    if not args.run:
        return 0
    from mlplatform.errors import PlatformError

    try:
        run = run_locally(args.config, args.min_rows)
    except (PlatformError, OSError) as exc:  # bad config, failed task: one line, exit code 2
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"data → data-quality: passed ({', '.join(quality_metrics(run))})")
    print(f"normalize → {run / 'normalize'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
