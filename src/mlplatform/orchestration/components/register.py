from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Model

from mlplatform.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def register(
    config_json: str,
    model: Input[Model],
    metrics_doc: Input[Artifact],
    quality: Input[Artifact],
    gate_report: Input[Artifact],
    train: Input[Dataset],
    loss_curve: Input[HTML],
    explain_report: Input[HTML],
    data_md5: str,
    git_commit: str,
    pipeline_run_id: str,
    trigger: str,
) -> str:
    """Log the run to MLflow, register a model version with lineage and its drift reference
    (a sample of the ``train`` split), alias it ``challenger``."""
    from pathlib import Path

    from mlplatform.config import PlatformConfig
    from mlplatform.stages import register_step

    cfg = PlatformConfig.from_json(config_json)
    lineage = {
        "data_md5": data_md5,
        "git_commit": git_commit,
        "pipeline_run_id": pipeline_run_id,
        "trigger": trigger,
    }
    paths = {
        "model": Path(model.path),
        "metrics": Path(metrics_doc.path),
        "quality": Path(quality.path),
        "gate": Path(gate_report.path),
        "train": Path(train.path),
        "reports": [Path(loss_curve.path), Path(explain_report.path)],
    }
    return register_step(cfg, paths, lineage)
