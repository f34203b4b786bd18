"""Which data a retraining run trains on, and whether it is new.

A run trains on what its config names (as ``mlplatform pipeline run`` does): ``data.version``
(a DVC md5, fetched from ``data.remote``), else the local file ``data/<model>.parquet``.
:func:`with_training_data` points the config at another file or version;
:func:`same_data_as_champion` says when that data is the one the serving champion was trained
on (its ``lineage.data_md5``): retraining on it would give the same model again.

    cfg = with_training_data(cfg, Path("new.parquet"), None)  # data/versions/<md5>/<model>.parquet
    problem = same_data_as_champion(cfg)  # None, or "data version 0f1e… is champion v1's ..."
"""

from __future__ import annotations

import shutil
from pathlib import Path

from mlplatform.config import PlatformConfig
from mlplatform.errors import DataError, UsageError
from mlplatform.monitoring.alert_store import AlertRecord, AlertStore


def with_training_data(
    cfg: PlatformConfig, data_file: Path | None = None, data_version: str | None = None
) -> PlatformConfig:
    """``cfg`` training on ``data_version`` (an md5 in the DVC remote) or on ``data_file``
    (copied, content-addressed, to ``<data_dir>/versions/<md5>/<model>.parquet``, where
    ``features materialize`` also keeps fetched versions); ``cfg`` itself when neither."""
    if data_file is not None and data_version is not None:
        raise UsageError("give --data FILE or --data-version MD5, not both")
    if data_version is not None:
        return cfg.with_overrides(data={"version": data_version})
    if data_file is None:
        return cfg
    folder = _stage(cfg, data_file)
    return cfg.with_overrides(data={"version": None, "data_dir": str(folder)})


def _stage(cfg: PlatformConfig, path: Path) -> Path:
    """Check ``path`` has the model's columns, copy it under its md5; the copy's folder."""
    from mlplatform.versioning import data_version

    _check_columns(cfg, path)
    md5 = data_version(path)
    folder = cfg.data.data_dir / "versions" / md5
    dest = folder / cfg.data_path.name
    if not (dest.is_file() and data_version(dest) == md5):
        folder.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(f".{dest.name}.partial")
        shutil.copyfile(path, partial)
        partial.replace(dest)
    return folder


def _check_columns(cfg: PlatformConfig, path: Path) -> None:
    """A bad file fails here, not in the run (a failed run would use up the alert)."""
    import pyarrow.parquet as pq

    if not path.is_file():
        raise DataError(f"no data file at {path}")
    try:
        names = set(pq.read_schema(path).names)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise DataError(f"{path} is not a readable Parquet file: {exc}") from None
    need = [cfg.entity, cfg.timestamp, *cfg.feature_names, cfg.target]
    missing = [c for c in need if c not in names]
    if missing:
        raise DataError(f"{path} lacks the columns {missing} of {cfg.model_name}")


def training_data_version(cfg: PlatformConfig) -> str:
    """The md5 of the data a local run of ``cfg`` trains on: ``data.version``, else the DVC
    md5 of the local file (:class:`DataError` naming the command when there is none)."""
    if cfg.data.version is not None:
        return cfg.data.version
    from mlplatform.versioning import data_version

    if not cfg.data_path.is_file():
        raise DataError(
            f"no data file at {cfg.data_path} to retrain on: write the new data there "
            "(`mlplatform data --config ...`), or give --data FILE or --data-version MD5"
        )
    return data_version(cfg.data_path)


def same_data_as_champion(cfg: PlatformConfig, md5: str | None = None) -> str | None:
    """Why retraining on ``md5`` (default :func:`training_data_version`) is pointless: it is
    the data the champion was trained on; None when it is new (or there is no champion)."""
    from mlplatform.registry.mlflow_registry import CHAMPION, Registry

    champ = Registry(cfg.registry).by_alias(cfg.model_name, CHAMPION)
    if champ is None:
        return None
    md5 = md5 or training_data_version(cfg)
    if champ.tags.get("lineage.data_md5") != md5:
        return None
    return f"data version {md5} is the one champion v{champ.version} was trained on"


def alerts_waiting(cfg: PlatformConfig) -> list[AlertRecord]:
    """The model's alerts a retrain trigger would claim now (open, or an expired claim)."""
    store = AlertStore(cfg.monitor.alert_store, cfg.monitor.claim_lease_seconds)
    with store:
        return [a for a in store.claimable() if a.model == cfg.model_name]
