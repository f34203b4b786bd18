"""Commands of the training pipeline and the registry: pipeline compile/run, lineage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from mlplatform.cli.base import ConfigOpt, app, console, friendly, library_output, rollout_hint
from mlplatform.config import PlatformConfig, load_config
from mlplatform.errors import ModelVersionNotFoundError

pipeline_app = typer.Typer(
    help="The KFP training pipeline: compile, run locally.", no_args_is_help=True
)
app.add_typer(pipeline_app, name="pipeline")


@pipeline_app.command("compile")
@friendly
def pipeline_compile(
    out: Annotated[Path, typer.Option(help="YAML to write.")] = Path(
        "pipelines/training_pipeline.yaml"
    ),
    components: Annotated[Path, typer.Option(help="Folder for each component's YAML.")] = Path(
        "components"
    ),
) -> None:
    """Compile the pipeline (the YAML to upload in the KFP UI) and each component's YAML."""
    from mlplatform.orchestration.training_pipeline import compile_components, compile_pipeline

    console.print(f"compiled → {compile_pipeline(out)}")
    for path in compile_components(components):
        console.print(f"component → {path}")


@pipeline_app.command("run")
@friendly
def pipeline_run(
    config: ConfigOpt = Path("configs/house-price.yaml"),
    pipeline: Annotated[
        Path | None,
        typer.Option(
            help="Compiled training pipeline YAML (default: the installed one, compiled). "
            "The README's extended pipeline: `make pipeline-extended`."
        ),
    ] = None,
) -> None:
    """Run the compiled pipeline locally (kfp.local, no cluster): data → ... → register."""
    from mlplatform.orchestration.runner import run_local, training_pipeline
    from mlplatform.stages import generate_data

    cfg = load_config(config)
    if pipeline is not None:
        training_pipeline(pipeline)  # another pipeline is refused before anything is printed
    with library_output(cfg.artifacts_dir) as log:
        if log is not None:
            console.print(f"task and library logs → {log} (--verbose shows them here)")
        if not cfg.data_path.exists():
            generate_data(cfg)
        run = run_local(cfg, pipeline)
        aliases, after = _registered(cfg, run.version, config)
    console.print(f"gate: {'passed' if run.gate.get('passed') else 'not passed'}")
    for c in run.gate.get("checks", []):
        console.print(f"  {c['name']} = {c['value']:.4g} (needs {c['op']} {c['threshold']:.4g})")
    console.print(f"registered {cfg.model_name} version {run.version}: {aliases}")
    console.print(f"artifacts: {run.run_dir}")
    for line in after:
        console.print(line, highlight=False, markup=False)


def _registered(cfg: PlatformConfig, version: str | None, config: Path) -> tuple[str, list[str]]:
    """What the registry made of the run's version, in words, and the lines that follow the
    summary: a note when it learnt from the champion's own data, and what to run next."""
    from mlplatform.orchestration.retrain_data import same_data_as_champion
    from mlplatform.registry.mlflow_registry import CHAMPION, Registry

    if version is None:
        return "no version number recorded (see the register task's log)", []
    info = Registry(cfg.registry).version(cfg.model_name, version)
    held = info.aliases
    c = f"--config {config}"
    if not held:
        return "no alias (a newer run took challenger)", []
    if CHAMPION in held:
        words = "aliases " + " and ".join(sorted(held)) + " (there was no champion yet)"
        return words, [f"next: `mlplatform features materialize {c}`, then `mlplatform serve {c}`"]
    after = []
    data = info.tags.get("lineage.data_md5")
    if data and (problem := same_data_as_champion(cfg, data)):
        after.append(f"note: {problem}: it can only tie (new data: `mlplatform data --shift 1.0`)")
    after.append(rollout_hint(config, "it"))
    return "aliases " + " and ".join(sorted(held)), after


@app.command()
@friendly
def lineage(
    model: Annotated[str, typer.Argument(help="Registered model name, e.g. house-price.")],
    config: Annotated[
        Path | None, typer.Option(help="Config (default configs/<model>.yaml).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """What is deployed: version, data version, validation, who and when (champion/challenger)."""
    from mlplatform.registry.mlflow_registry import Registry, lineage_document
    from mlplatform.reporting.lineage import lineage_table

    cfg = load_config(config or Path("configs") / f"{model}.yaml")
    doc = lineage_document(Registry(cfg.registry), model)
    if as_json:
        print(json.dumps(doc, indent=2))
    elif not doc["aliases"]:
        raise ModelVersionNotFoundError(
            f"model {model!r} has no champion or challenger in {cfg.registry.tracking_uri}"
        )
    elif console.is_terminal:
        console.print(lineage_table(doc))
    else:  # a pipe or a file: rich would fold long values at 80 columns
        Console(file=console.file, width=200).print(lineage_table(doc))
