"""The training pipeline: data → normalize → train_gd → explain → gate → (if passed) register.

Defined in the installed package, so the console script and the retrain trigger can compile
it anywhere. ``make compile`` (``mlplatform pipeline compile``) writes the repository's
``pipelines/training_pipeline.yaml`` (the file to upload in the KFP UI) and
``components/*.yaml``.
"""

import tempfile
from pathlib import Path

from kfp import compiler, dsl, kubernetes

from mlplatform.orchestration.components.data import data
from mlplatform.orchestration.components.explain import explain
from mlplatform.orchestration.components.gate import gate
from mlplatform.orchestration.components.normalize import normalize
from mlplatform.orchestration.components.register import register
from mlplatform.orchestration.components.train_gd import train_gd

PIPELINE_NAME = "mlplatform-training"
#: The data step's object-store Secret in the KFP namespace (``scripts/deploy.sh`` writes it).
DATA_SECRET = "mlplatform-pipeline-data"
#: Its keys and the variables they become: the S3 client of DVC/s3fs reads these.
DATA_SECRET_ENV = {
    "access-key-id": "AWS_ACCESS_KEY_ID",
    "secret-access-key": "AWS_SECRET_ACCESS_KEY",
    "endpoint-url": "AWS_ENDPOINT_URL",
}


def _resources(task: dsl.PipelineTask, cpu: str, memory: str) -> dsl.PipelineTask:
    """Requests and limits, and no cache: KFP caches every task by default (``enableCache:
    true``; cluster-facts.md), so a second run on unchanged inputs (a retrain on the same data
    version after drift) would reuse the old outputs and register nothing. Set in the spec, it
    holds for every way a run starts: ``make pipeline-run``, the retrain trigger, the UI."""
    return (
        task.set_cpu_request(cpu)
        .set_memory_request(memory)
        .set_cpu_limit("2")
        .set_memory_limit("4G")
        .set_caching_options(False)
    )


@dsl.pipeline(name=PIPELINE_NAME, description="Train, explain, gate and register one model.")
def training_pipeline(
    config_json: str,
    git_commit: str = "unknown",
    trigger: str = "manual",
    data_secret: str = DATA_SECRET,
) -> None:
    """``config_json``: the model's PlatformConfig as JSON; ``trigger``: who started the run
    ("manual", or the drift alert id), recorded in the model's lineage; ``data_secret``: the
    Secret (in the KFP namespace) with the object store's credentials the data step fetches
    ``data.version`` with (:data:`DATA_SECRET_ENV`; optional: without it the step runs with
    no S3 credentials, as ``kfp.local`` does, which ignores Kubernetes settings)."""
    d = _resources(data(config_json=config_json), "500m", "1G")
    kubernetes.use_secret_as_env(d, data_secret, DATA_SECRET_ENV, optional=True)
    n = _resources(normalize(config_json=config_json, dataset=d.outputs["dataset"]), "250m", "512M")
    splits = {k: n.outputs[k] for k in ("train", "val", "test")}
    t = _resources(
        train_gd(config_json=config_json, scaler=n.outputs["scaler"], **splits), "1", "2G"
    )
    e = _resources(explain(config_json=config_json, model=t.outputs["model"], **splits), "1", "1G")
    g = _resources(
        gate(
            config_json=config_json,
            metrics_doc=t.outputs["metrics_doc"],
            quality=e.outputs["quality"],
            test=n.outputs["test"],
        ),
        "250m",
        "512M",
    )
    with dsl.If(g.outputs["Output"] == "true", name="gate-passed"):
        _resources(
            register(
                config_json=config_json,
                model=t.outputs["model"],
                metrics_doc=t.outputs["metrics_doc"],
                quality=e.outputs["quality"],
                gate_report=g.outputs["report"],
                train=n.outputs["train"],
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
    "gate": gate,
    "register": register,
}


def compile_pipeline(path: Path) -> Path:
    """Write the pipeline's IR YAML (what the KFP UI and ``kfp.local`` load) to ``path``."""
    compiler.Compiler().compile(training_pipeline, str(path))
    return path


def compiled_pipeline() -> Path:
    """The pipeline compiled into a fresh temporary folder (for runs started from code)."""
    return compile_pipeline(Path(tempfile.mkdtemp(prefix="mlplatform-pipeline-")) / "p.yaml")


def compile_components(folder: Path) -> list[Path]:
    """Each component as a reusable YAML (``kfp.components.load_component_from_file``)."""
    paths = []
    for name, component in COMPONENTS.items():
        path = folder / f"{name}.yaml"
        compiler.Compiler().compile(component, str(path))
        paths.append(path)
    return paths
