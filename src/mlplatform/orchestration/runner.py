"""Run the compiled training pipeline locally with ``kfp.local`` (no cluster, no network).

The runner executes exactly the YAML users upload in the KFP UI; every component runs as a
subprocess of this Python environment (``SubprocessRunner(use_venv=False)``).
"""

from __future__ import annotations

import json
import subprocess
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlplatform.config import PlatformConfig
from mlplatform.errors import PipelineRunError


@dataclass(frozen=True)
class PipelineRun:
    """Where a local run's artifacts landed, its gate verdict and the registered version."""

    run_dir: Path
    gate: dict[str, Any]
    version: str | None

    def task_dir(self, task: str) -> Path:
        return self.run_dir / task


def absolute(cfg: PlatformConfig, base: Path) -> PlatformConfig:
    """Resolve every relative path in the config against ``base`` (tasks run elsewhere)."""

    def resolve(p: Path | str) -> str:
        return str(p if Path(p).is_absolute() else (base / p).resolve())

    uri = cfg.registry.tracking_uri
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = "sqlite:///" + resolve(uri.removeprefix("sqlite:///"))
    store_yaml = cfg.feature_store.store_yaml
    return cfg.with_overrides(
        artifacts_dir=resolve(cfg.artifacts_dir),  # type: ignore[arg-type]
        data={"data_dir": resolve(cfg.data.data_dir)},
        registry={"tracking_uri": uri, "artifact_root": resolve(cfg.registry.artifact_root)},
        feature_store={
            "repo_dir": resolve(cfg.feature_store.repo_dir),
            "store_yaml": resolve(store_yaml) if store_yaml else None,
        },
    )


def git_commit(base: Path) -> str:
    """HEAD of the checkout (``-dirty`` when it has uncommitted changes), or 'unknown'."""
    try:
        head = subprocess.run(
            ["git", "-C", str(base), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(base), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


@contextmanager
def quiet_local_runner() -> Iterator[None]:
    """Silence kfp.local's warnings that do not apply here: our image *is* this environment,
    and CPU/memory requests only take effect on a cluster."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*custom or non-Python base image.*")
        warnings.filterwarnings("ignore", message=".*have no effect in the current local runner.*")
        yield


@contextmanager
def _output(log: Path | None) -> Iterator[None]:
    """kfp.local prints every task's logs to stdout; with ``log`` they go to that file, as
    plain text (kfp.local colours task names and states whatever the stream)."""
    if log is None:
        yield
        return
    from mlplatform.reporting.console import PlainText

    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a", encoding="utf-8") as fh, redirect_stdout(PlainText(fh)):
        yield


def run_local(
    cfg: PlatformConfig,
    pipeline: Path | None = None,
    base: Path | None = None,
    trigger: str = "manual",
    log: Path | None = None,
) -> PipelineRun:
    """Run the compiled pipeline for ``cfg`` with kfp.local; raise PipelineRunError on failure.

    ``pipeline``: a compiled YAML (default: the installed package's pipeline, compiled now).
    """
    from kfp import local

    from mlplatform.orchestration.training_pipeline import compiled_pipeline

    base = (base or Path.cwd()).resolve()
    pipeline = pipeline or compiled_pipeline()
    if not pipeline.is_file():
        raise PipelineRunError(
            f"no compiled pipeline at {pipeline} (`make compile` writes the training pipeline)"
        )
    pipe = training_pipeline(pipeline)
    cfg = absolute(cfg, base)
    root = cfg.artifacts_dir / "pipeline-runs"
    before = set(root.glob("*")) if root.exists() else set()
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    try:
        with quiet_local_runner(), _output(log):
            pipe(config_json=cfg.to_json(), git_commit=git_commit(base), trigger=trigger)
        failure = None
    except RuntimeError as exc:  # kfp.local: "... finished with status FAILURE ...", coloured
        from mlplatform.reporting.console import ANSI

        failure = ANSI.sub("", str(exc).splitlines()[0])
    run_dir = max(set(root.glob("*")) - before, key=lambda p: p.stat().st_mtime, default=root)
    gate = _read_json(run_dir / "gate" / "report")
    if failure:
        reasons = [c for c in gate.get("checks", []) if not c.get("passed")]
        why = "; ".join(
            f"{c['name']} = {c['value']} (needs {c['op']} {c['threshold']})" for c in reasons
        )
        raise PipelineRunError(
            f"{failure}" + (f": gate failed: {why}" if why else "") + f" (artifacts: {run_dir})"
        )
    out = _read_json(run_dir / "register" / "executor_output.json")
    version = out.get("parameterValues", {}).get("Output")
    return PipelineRun(run_dir, gate, str(version) if version is not None else None)


#: What ``run_local`` passes to the pipeline: a compiled training pipeline takes these.
TRAINING_INPUTS = ("config_json", "git_commit", "trigger")


def training_pipeline(path: Path) -> Any:
    """The compiled training pipeline at ``path``; PipelineRunError for any other file (not
    KFP YAML, or a pipeline with other inputs, e.g. the README's extended pipeline)."""
    import yaml
    from kfp import components

    try:
        pipe = components.load_component_from_file(str(path))
    except (yaml.YAMLError, ValueError, KeyError, AttributeError, TypeError) as exc:
        raise PipelineRunError(f"{path} is not a compiled KFP pipeline ({exc!r:.80})") from None
    inputs = pipe.component_spec.inputs or {}
    required = {name for name, spec in inputs.items() if not spec.optional}
    if not set(TRAINING_INPUTS) <= set(inputs) or not required <= set(TRAINING_INPUTS):
        raise PipelineRunError(
            f"{path} is not the training pipeline (its inputs: {', '.join(inputs) or 'none'}; "
            f"`pipeline run` passes {', '.join(TRAINING_INPUTS)}); the README's extended "
            "pipeline runs locally with `make pipeline-extended`"
        )
    return pipe


def _read_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return doc if isinstance(doc, dict) else {}
