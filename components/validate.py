from kfp import dsl
from kfp.dsl import Artifact, Input, Output

from mlplatform.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def validate(
    config_json: str,
    metrics_doc: Input[Artifact],
    quality: Input[Artifact],
    gate: Output[Artifact],
) -> str:
    """The gate: thresholds + explanation quality + the current champion (from MLflow).

    Returns "true" when the candidate passed. A failed gate fails this task with the reasons
    (``validate.fail_pipeline``, default on), so nothing is registered.
    """
    import json
    from pathlib import Path

    from mlplatform.config import PlatformConfig
    from mlplatform.steps import gate_step

    cfg = PlatformConfig.from_json(config_json)
    doc = json.loads(Path(metrics_doc.path).read_text())
    report = gate_step(cfg, doc, json.loads(Path(quality.path).read_text()), Path(gate.path))
    print(report.summary())
    return str(report.passed).lower()
