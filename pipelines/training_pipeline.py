"""The training pipeline: data → normalize → train_gd → explain → validate → (if passed) register.

Compile: ``python -m pipelines.training_pipeline`` (or ``make compile``) writes
``pipelines/training_pipeline.yaml``, the file to upload in the KFP UI.
"""

from pathlib import Path

from components.data import data
from components.explain import explain
from components.normalize import normalize
from components.register import register
from components.train_gd import train_gd
from components.validate import validate
from kfp import compiler, dsl

PIPELINE_NAME = "mlplatform-training"
COMPILED = Path(__file__).with_name("training_pipeline.yaml")


def _resources(task: dsl.PipelineTask, cpu: str, memory: str) -> dsl.PipelineTask:
    return (
        task.set_cpu_request(cpu)
        .set_memory_request(memory)
        .set_cpu_limit("2")
        .set_memory_limit("4G")
    )


@dsl.pipeline(name=PIPELINE_NAME, description="Train, explain, validate and register one model.")
def training_pipeline(
    config_json: str, git_commit: str = "unknown", trigger: str = "manual"
) -> None:
    """``config_json``: the model's PlatformConfig as JSON; ``trigger``: who started the run
    ("manual", or the drift alert id), recorded in the model's lineage."""
    d = _resources(data(config_json=config_json), "500m", "1G")
    n = _resources(normalize(config_json=config_json, dataset=d.outputs["dataset"]), "250m", "512M")
    splits = {k: n.outputs[k] for k in ("train", "val", "test")}
    t = _resources(
        train_gd(config_json=config_json, scaler=n.outputs["scaler"], **splits), "1", "2G"
    )
    e = _resources(explain(config_json=config_json, model=t.outputs["model"], **splits), "1", "1G")
    v = _resources(
        validate(
            config_json=config_json,
            metrics_doc=t.outputs["metrics_doc"],
            quality=e.outputs["quality"],
            test=n.outputs["test"],
        ),
        "250m",
        "512M",
    )
    with dsl.If(v.outputs["Output"] == "true", name="gate-passed"):
        _resources(
            register(
                config_json=config_json,
                model=t.outputs["model"],
                metrics_doc=t.outputs["metrics_doc"],
                quality=e.outputs["quality"],
                gate=v.outputs["gate"],
                loss_curve=t.outputs["loss_curve"],
                explain_report=e.outputs["report"],
                data_md5=d.outputs["data_md5"],
                git_commit=git_commit,
                pipeline_run_id=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
                trigger=trigger,
            ),
            "250m",
            "512M",
        )


COMPONENTS = {
    "data": data,
    "normalize": normalize,
    "train_gd": train_gd,
    "explain": explain,
    "validate": validate,
    "register": register,
}
COMPONENT_DIR = Path(__file__).resolve().parents[1] / "components"


def compile_pipeline(path: Path = COMPILED) -> Path:
    compiler.Compiler().compile(training_pipeline, str(path))
    return path


def compile_components(folder: Path = COMPONENT_DIR) -> list[Path]:
    """Each component as a reusable YAML (``kfp.components.load_component_from_file``)."""
    paths = []
    for name, component in COMPONENTS.items():
        path = folder / f"{name}.yaml"
        compiler.Compiler().compile(component, str(path))
        paths.append(path)
    return paths


if __name__ == "__main__":
    print(compile_pipeline())
    for p in compile_components():
        print(p)
