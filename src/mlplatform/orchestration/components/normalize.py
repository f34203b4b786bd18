from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Output

from mlplatform.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def normalize(
    config_json: str,
    dataset: Input[Dataset],
    scaler: Output[Artifact],
    train: Output[Dataset],
    val: Output[Dataset],
    test: Output[Dataset],
    rows: Output[Metrics],
) -> None:
    """Split, fit min-max (or z-score) on the training split only; write scaler + splits."""
    from pathlib import Path

    from mlplatform.config import PlatformConfig
    from mlplatform.stages import normalize_step

    cfg = PlatformConfig.from_json(config_json)
    outs = {"train": Path(train.path), "val": Path(val.path), "test": Path(test.path)}
    counts = normalize_step(cfg, Path(dataset.path), Path(scaler.path), outs)
    for name, n in counts.items():
        rows.log_metric(f"{name}_rows", n)
