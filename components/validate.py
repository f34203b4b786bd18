from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Output

from mlplatform.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def validate(
    config_json: str,
    metrics_doc: Input[Artifact],
    quality: Input[Artifact],
    test: Input[Dataset],
    gate: Output[Artifact],
) -> str:
    """The gate: thresholds + explanation quality + the current champion (from MLflow),
    scored on this run's test split.

    Returns "true" when the candidate passed. A failed gate fails this task with the reasons
    (``validate.fail_pipeline``, default on), so nothing is registered.
    """
    import json
    from pathlib import Path

    from mlplatform.config import PlatformConfig
    from mlplatform.steps import gate_step

    cfg = PlatformConfig.from_json(config_json)
    doc = json.loads(Path(metrics_doc.path).read_text())
    quality_values = json.loads(Path(quality.path).read_text())
    report = gate_step(cfg, doc, quality_values, Path(gate.path), Path(test.path))
    print(report.summary())
    return str(report.passed).lower()
