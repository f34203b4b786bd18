from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Output

from mlplatform.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def gate(
    config_json: str,
    metrics_doc: Input[Artifact],
    quality: Input[Artifact],
    test: Input[Dataset],
    report: Output[Artifact],
) -> str:
    """The gate: thresholds + explanation quality + the current champion (from MLflow),
    scored on this run's test split.

    Returns "true" when the candidate passed. A failed gate fails this task with the reasons
    (``gate.fail_pipeline``, default on), so nothing is registered.
    """
    import json
    from pathlib import Path

    from mlplatform.config import PlatformConfig
    from mlplatform.stages import gate_step

    cfg = PlatformConfig.from_json(config_json)
    doc = json.loads(Path(metrics_doc.path).read_text())
    quality_values = json.loads(Path(quality.path).read_text())
    verdict = gate_step(cfg, doc, quality_values, Path(report.path), Path(test.path))
    print(verdict.summary())
    return str(verdict.passed).lower()
