"""Stage 1, data: generate a dataset, or build the training set from the feature store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlplatform.config import PlatformConfig
from mlplatform.core.training import generate
from mlplatform.stages.io import read_data


def generate_data(cfg: PlatformConfig, out: Path | None = None) -> Path:
    """Generate the configured dataset and write it as Parquet (default ``cfg.data_path``)."""
    path = out or cfg.data_path
    path.parent.mkdir(parents=True, exist_ok=True)
    generate(cfg.data).to_parquet(path, index=False)
    return path


def versioned_config(cfg: PlatformConfig, cache: Path) -> PlatformConfig:
    """The config whose ``data_path`` is the data version the run must train on.

    Without ``data.version``: ``cfg`` (the current local file). With it: that md5 is fetched
    from the DVC remote (``data.remote``, default the repo's) into ``cache/<md5>/``, checked, and
    ``data.data_dir`` points there, so the Feast file source (declared on ``data_path``) and
    every later read follow the fetched copy.
    """
    version = cfg.data.version
    if version is None:
        return cfg
    from mlplatform.versioning import default_remote, fetch_version

    folder = (cache / version).resolve()
    fetch_version(cfg.data.remote or default_remote(), version, folder / cfg.data_path.name)
    return cfg.with_overrides(data={"data_dir": str(folder)})


def data_source(cfg: PlatformConfig) -> str:
    """Where the bytes a run trains on can be read again, recorded as the model's
    ``lineage.data_path``: with ``data.version``, that object in the DVC remote (a pipeline
    pod's fetched copy is gone with the pod); else the local file ``cfg.data_path``.

    For ``data.remote: s3://b/dvc`` and ``data.version: 0f1e…`` (32 hex digits) that is
    ``s3://b/dvc/files/md5/0f/1e…``: ``dvc`` or any S3 client reads it back by that URL.
    """
    if cfg.data.version is None:
        return str(cfg.data_path)
    from mlplatform.versioning import default_remote, object_url

    return object_url(cfg.data.remote or default_remote(), cfg.data.version)


def materialize_features(cfg: PlatformConfig) -> Path:
    """Fill the online store from the data version to serve: ``data.version`` fetched into
    ``<data_dir>/versions/``, else ``cfg.data_path`` (generated when absent); the file used."""
    from mlplatform.features import refresh_online

    if cfg.data.version is None and not cfg.data_path.exists():
        generate_data(cfg)
    cfg = versioned_config(cfg, cfg.data.data_dir / "versions")
    refresh_online(cfg)
    return cfg.data_path


def push_data(
    cfg: PlatformConfig, remote: str | None = None, path: Path | None = None
) -> tuple[str, str]:
    """Push ``path`` (default ``cfg.data_path``) to the DVC ``remote`` (default ``data.remote``,
    else the repo's default remote) as a data version; ``(md5, remote)``. Setting
    ``data.version`` to that md5 makes a pipeline run train on exactly these bytes."""
    from mlplatform.versioning import default_remote, push_version

    target = remote or cfg.data.remote or default_remote()
    return push_version(path or cfg.data_path, target), target


def data_step(cfg: PlatformConfig, out: Path) -> dict[str, Any]:
    """Training set from the Feast offline store (point-in-time join) for every raw event.

    The raw file gives the entity ids and event times: the version ``data.version`` names
    (fetched beside ``out``, see :func:`versioned_config`), else ``cfg.data_path``. Its DVC md5
    is the data version recorded with the model.
    """
    from mlplatform.features import apply, open_store, training_frame
    from mlplatform.features.definitions import service_name
    from mlplatform.versioning import data_version

    cfg = versioned_config(cfg, out.parent / "data-versions")
    source = cfg.data_path
    events = read_data(source)[[cfg.entity, cfg.timestamp]]
    store = open_store(cfg)
    apply(store, [cfg])
    frame = training_frame(store, cfg, events)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out, index=False)
    return {
        "data_md5": data_version(source),
        "feature_service": service_name(cfg),
        "rows": len(frame),
        "data_path": str(source),
    }
