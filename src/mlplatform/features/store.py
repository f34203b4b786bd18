"""Open a feature store, register the definitions, fill the online store.

>>> store = feature_store(Path("feature_repo"))          # embedded: SQLite + Parquet files
>>> apply(store, [load_config("configs/house-price.yaml")])
>>> materialize(store, end=datetime.now(timezone.utc))
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from feast import FeatureStore
from feast.errors import FeastModuleImportError
from feast.repo_config import FeastConfigError, load_repo_config

from mlplatform.config import PlatformConfig
from mlplatform.errors import FeatureRepoError
from mlplatform.features.definitions import definitions

DEFAULT_YAML = "feature_store.yaml"
#: Start of a full materialization: every row up to ``end``, the latest per entity wins.
BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)
_VAR = re.compile(r"\$\{(\w+)\}")
#: Connect/read timeout of a Redis online store when no config says (seconds; the config's
#: ``feature_store.online_timeout_s`` has the same default).
ONLINE_TIMEOUT_S = 1.0


def open_store(cfg: PlatformConfig) -> FeatureStore:
    """The feature store the config names (``feature_store.repo_dir`` and ``store_yaml``)."""
    fs = cfg.feature_store
    return feature_store(fs.repo_dir, fs.store_yaml, online_timeout_s=fs.online_timeout_s)


def refresh_online(cfg: PlatformConfig, end: datetime | None = None) -> FeatureStore:
    """Register the model's definitions and fill the online store with every row up to
    ``end`` (default now): ``feast apply`` + ``feast materialize``."""
    store = open_store(cfg)
    apply(store, [cfg])
    materialize(store, end=end or datetime.now(UTC))
    return store


def feature_store(
    repo_dir: Path, yaml_file: Path | None = None, *, online_timeout_s: float = ONLINE_TIMEOUT_S
) -> FeatureStore:
    """A :class:`FeatureStore` set up by ``yaml_file`` (default ``repo_dir/feature_store.yaml``).

    Relative registry and SQLite paths in the YAML resolve against ``repo_dir``, so the committed
    YAML can serve a temporary repo. ``${VAR}`` in the YAML is read from the environment.
    A Redis online store gets bounded waits (:func:`bounded_redis`).
    Nothing is created on disk until :func:`apply`.
    """
    path = yaml_file or repo_dir / DEFAULT_YAML
    if not path.is_file():
        raise FeatureRepoError(f"no feature store config at {path}")
    unset = unset_variables(path)
    if unset:
        raise FeatureRepoError(f"{path}: environment variable(s) not set: {', '.join(unset)}")
    try:
        config = load_repo_config(repo_dir, path)
    except FeastConfigError as exc:
        raise FeatureRepoError(f"{path}: invalid feature store config: {exc}") from None
    except FeastModuleImportError as exc:  # a store type whose client is not installed
        cause = str(exc.__cause__).splitlines()[0]
        raise FeatureRepoError(f"{path}: {exc}: {cause} (pip install 'feast[<store>]')") from None
    if isinstance(config.online_config, dict) and config.online_config.get("type") == "redis":
        bounded_redis(config.online_config, online_timeout_s)
    return FeatureStore(repo_path=str(repo_dir), config=config)


def bounded_redis(online: dict[str, Any], timeout_s: float) -> None:
    """Give a Redis online store's ``connection_string`` a connect and read timeout and no
    client retries (redis-py's default, 10 retries, turns an outage into tens of seconds),
    unless it sets them itself; a lookup against a Redis that is down then fails within about
    twice ``timeout_s``, and the server answers 503.

    >>> online = {"type": "redis", "connection_string": "redis:6379,db=0"}
    >>> bounded_redis(online, 1.0); online["connection_string"]
    'redis:6379,db=0,socket_connect_timeout=1.0,socket_timeout=1.0,retry=null'
    """
    text = str(online.get("connection_string", "localhost:6379"))
    given = {part.split("=", 1)[0].strip() for part in text.split(",") if "=" in part}
    extra = {"socket_connect_timeout": timeout_s, "socket_timeout": timeout_s, "retry": "null"}
    online["connection_string"] = ",".join(
        [text, *(f"{k}={v}" for k, v in extra.items() if k not in given)]
    )


def unset_variables(path: Path) -> list[str]:
    """Names of ``${VAR}`` in the YAML's values (not comments) that the environment lacks."""
    raw = yaml.safe_load(os.path.expandvars(path.read_text(encoding="utf-8")))
    return sorted({name for text in _strings(raw) for name in _VAR.findall(text)})


def _strings(node: object) -> list[str]:
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return [node] if isinstance(node, str) else []


def apply(store: FeatureStore, cfgs: Sequence[PlatformConfig]) -> None:
    """Register the entities, sources, views and services of ``cfgs`` (idempotent)."""
    Path(store.repo_path).mkdir(parents=True, exist_ok=True)  # Feast makes only the last level
    store.apply(list(definitions(cfgs)))


def materialize(store: FeatureStore, end: datetime, start: datetime = BEGINNING) -> None:
    """Copy the latest value per entity with event time in ``[start, end]`` to the online store.

    Only online views are written; the labels stay offline. Naive datetimes are taken as UTC.
    """
    store.materialize(start_date=start, end_date=end)
