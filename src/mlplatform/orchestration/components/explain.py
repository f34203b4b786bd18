from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Model, Output

from mlplatform.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def explain(
    config_json: str,
    model: Input[Model],
    train: Input[Dataset],
    val: Input[Dataset],
    test: Input[Dataset],
    metrics: Output[Metrics],
    report: Output[HTML],
    quality: Output[Artifact],
) -> None:
    """LIME + Anchor on a sample of test rows; explanation-quality metrics and the HTML report."""
    import json
    from pathlib import Path

    from mlplatform.config import PlatformConfig
    from mlplatform.stages import explain_step

    cfg = PlatformConfig.from_json(config_json)
    splits = {"train": Path(train.path), "val": Path(val.path), "test": Path(test.path)}
    values = explain_step(cfg, Path(model.path), splits, Path(report.path))
    for name, value in values.items():
        metrics.log_metric(name, value)
    Path(quality.path).write_text(json.dumps(values))
