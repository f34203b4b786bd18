"""DVC adapter: data versions recorded with every model, params.yaml generated from the configs.

>>> version = data_version(Path("data/house-price.parquet"))   # == md5 in the .dvc / dvc.lock
>>> init(repo, remote=Path("/srv/dvc")); track(repo, data); push(repo); pull(repo)
"""

from mlplatform.versioning.params import committed_configs, params_document, render_params
from mlplatform.versioning.repo import (
    checkout,
    data_version,
    init,
    pull,
    push,
    recorded_version,
    run_dvc,
    track,
)

__all__ = [
    "checkout",
    "committed_configs",
    "data_version",
    "init",
    "params_document",
    "pull",
    "push",
    "recorded_version",
    "render_params",
    "run_dvc",
    "track",
]
