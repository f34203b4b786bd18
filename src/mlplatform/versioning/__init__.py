"""DVC adapter: data versions recorded with every model, params.yaml generated from the configs.

>>> version = data_version(Path("data/house-price.parquet"))   # == md5 in the .dvc / dvc.lock
>>> init(repo, remote=Path("/srv/dvc")); track(repo, data); push(repo); pull(repo)
>>> md5 = push_version(data, "s3://bucket/dvc"); fetch_version("s3://bucket/dvc", md5, dest)
"""

from mlplatform.versioning.params import committed_configs, params_document, render_params
from mlplatform.versioning.remote import (
    default_remote,
    fetch_version,
    object_url,
    push_version,
    s3_endpoint,
)
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
    "default_remote",
    "fetch_version",
    "init",
    "object_url",
    "params_document",
    "pull",
    "push",
    "push_version",
    "recorded_version",
    "render_params",
    "run_dvc",
    "s3_endpoint",
    "track",
]
