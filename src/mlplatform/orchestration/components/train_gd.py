from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Model, Output

from mlplatform.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train_gd(
    config_json: str,
    scaler: Input[Artifact],
    train: Input[Dataset],
    val: Input[Dataset],
    test: Input[Dataset],
    model: Output[Model],
    metrics: Output[Metrics],
    loss_curve: Output[HTML],
    metrics_doc: Output[Artifact],
) -> None:
    """Gradient descent with the stored scaler; the loss curve as HTML for the KFP UI."""
    import base64
    import json
    from pathlib import Path

    from mlplatform.config import PlatformConfig
    from mlplatform.stages import train_step
    from mlplatform.stages.io import flat_metrics

    cfg = PlatformConfig.from_json(config_json)
    splits = {"train": Path(train.path), "val": Path(val.path), "test": Path(test.path)}
    png = Path(model.path).with_suffix(".png")
    doc = train_step(cfg, Path(scaler.path), splits, Path(model.path), png)
    for name, value in flat_metrics(doc).items():
        metrics.log_metric(f"test_{name}", value)
    Path(metrics_doc.path).write_text(json.dumps(doc))
    b64 = base64.b64encode(png.read_bytes()).decode()
    Path(loss_curve.path).write_text(f'<img alt="loss curve" src="data:image/png;base64,{b64}">')
