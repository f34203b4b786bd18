"""Entity ids → feature rows from the Feast online store (the Michelangelo pattern).

An online store that was never filled is a missing prerequisite, not bad input: ids are then
a 503 :class:`FeaturesNotMaterializedError` saying what to run, and a 400 unknown id only once
the store has been materialized (an id it does not hold). ``mlplatform serve`` asks the same
question at start (:func:`online_store_hint`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from mlplatform.config import PlatformConfig
from mlplatform.errors import FeatureRepoError, FeaturesNotMaterializedError, UnknownEntityError

if TYPE_CHECKING:  # not at run time: importing KServe parses sys.argv (see serving/__main__)
    from feast import FeatureStore

    from mlplatform.serving.inputs import Lookup


def materialize_command(config_path: Path | None) -> str:
    """The command that fills the online store for this config."""
    return f"mlplatform features materialize --config {config_path or '<this model config>'}"


def online_lookup(cfg: PlatformConfig, config_path: Path | None = None) -> Lookup:
    """A function ids → DataFrame of the model's features (UnknownEntityError names bad ids;
    :class:`FeaturesNotMaterializedError` while the online store was never filled)."""
    from mlplatform.features import online_rows, open_store

    store = open_store(cfg)

    def lookup(ids: list[int]) -> pd.DataFrame:
        try:
            return online_rows(store, cfg, ids)[list(cfg.feature_names)]
        except (UnknownEntityError, FeatureRepoError):
            store.refresh_registry()  # type: ignore[no-untyped-call]  # applied since?
            if not materialized(store, cfg):
                raise FeaturesNotMaterializedError(_not_filled(cfg, config_path)) from None
            return online_rows(store, cfg, ids)[list(cfg.feature_names)]

    return lookup


def materialized(store: FeatureStore, cfg: PlatformConfig) -> bool:
    """Every online view of the model's feature service has been materialized at least once
    (Feast records each run's interval in its registry)."""
    from mlplatform.features.retrieval import feature_service

    try:
        service = feature_service(store, cfg)
    except FeatureRepoError:
        return False
    views = [store.get_feature_view(p.name) for p in service.feature_view_projections]
    return all(v.materialization_intervals for v in views)


def online_store_hint(cfg: PlatformConfig, config_path: Path) -> str | None:
    """One line saying what to run before entity ids can be served, or None when the online
    store is ready."""
    from mlplatform.features import open_store

    try:
        ready = materialized(open_store(cfg), cfg)
    except FeatureRepoError as exc:
        return f"entity ids ({cfg.entity}) cannot be resolved: {exc}"
    return None if ready else _not_filled(cfg, config_path)


def _not_filled(cfg: PlatformConfig, config_path: Path | None) -> str:
    return (
        f"the online store of {cfg.model_name} was never materialized, so entity ids "
        f"({cfg.entity}) cannot be resolved: run `{materialize_command(config_path)}`"
    )
