from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Output

from mlplatform.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def data(config_json: str, dataset: Output[Dataset]) -> NamedTuple(
    "Data", [("data_md5", str), ("feature_service", str), ("rows", int)]
):
    """Point-in-time training set from the Feast offline store (features + label) as Parquet.

    Also returns the DVC md5 of the raw data file, recorded with the model's lineage.
    """
    from collections import namedtuple
    from pathlib import Path

    from mlplatform.config import PlatformConfig
    from mlplatform.stages import data_step

    cfg = PlatformConfig.from_json(config_json)
    info = data_step(cfg, Path(dataset.path))
    out = namedtuple("Data", ["data_md5", "feature_service", "rows"])
    return out(info["data_md5"], info["feature_service"], info["rows"])
