"""Read features back: point-in-time training sets (offline) and the latest values (online).

>>> training_frame(store, cfg, events[[cfg.entity, cfg.timestamp]])   # + features + target
>>> online_rows(store, cfg, [17, 42])                                # entity + features
"""

from __future__ import annotations

import pandas as pd
from feast import FeatureService, FeatureStore
from feast.errors import FeatureServiceNotFoundException
from feast.online_response import OnlineResponse
from feast.protos.feast.serving.ServingService_pb2 import FieldStatus

from mlplatform.config import PlatformConfig
from mlplatform.errors import (
    DataError,
    FeatureRepoError,
    OnlineStoreUnavailableError,
    UnknownEntityError,
)
from mlplatform.features.definitions import label_ref, service_name

_UTC_NS = "datetime64[ns, UTC]"


def feature_service(store: FeatureStore, cfg: PlatformConfig) -> FeatureService:
    """The model's registered feature service, or :class:`FeatureRepoError` if not applied."""
    try:
        return store.get_feature_service(service_name(cfg))
    except FeatureServiceNotFoundException:
        raise FeatureRepoError(
            f"feature service {service_name(cfg)!r} is not registered in the feature store at "
            f"{store.repo_path}: apply the definitions first (features.apply or `feast apply`)"
        ) from None


def service_refs(service: FeatureService) -> list[str]:
    """``view:feature`` references of every feature a service serves."""
    refs = []
    for proj in service.feature_view_projections:
        view = proj.name_to_use()  # type: ignore[no-untyped-call]  # alias/version aware
        refs += [f"{view}:{f.name}" for f in proj.features]
    return refs


def training_frame(
    store: FeatureStore, cfg: PlatformConfig, entity_df: pd.DataFrame
) -> pd.DataFrame:
    """Entity, timestamp, features and target of each ``entity_df`` row, in its order.

    Point-in-time correct: each row gets, per view, the latest value with event time at or
    before the row's timestamp (a later value never leaks in). The features are the model's
    feature service; the target is joined the same way from the offline-only label view.
    A row with no value at or before its timestamp gets NaN/None.

    Feast's file (Dask) offline store drops such rows and collapses rows sharing an id and a
    timestamp (feast-dev/feast#6787), so Feast is asked once per distinct (id, time) and the
    answer is joined back onto every requested row.
    """
    events = _events(cfg, entity_df)
    keys = [cfg.entity, cfg.timestamp]
    job = store.get_historical_features(
        entity_df=events.drop_duplicates(ignore_index=True),
        features=[*service_refs(feature_service(store, cfg)), label_ref(cfg)],
    )
    found = job.to_df().astype({cfg.timestamp: _UTC_NS})
    out = events.merge(found, on=keys, how="left", validate="many_to_one")
    return out[[*keys, *cfg.feature_names, cfg.target]]


def _events(cfg: PlatformConfig, entity_df: pd.DataFrame) -> pd.DataFrame:
    """``entity_df``'s id and timestamp columns, times as UTC nanoseconds (naive = UTC)."""
    keys = [cfg.entity, cfg.timestamp]
    missing = [c for c in keys if c not in entity_df.columns]
    if missing:
        raise DataError(f"entity dataframe lacks column(s) {missing}; it needs {keys}")
    times = pd.to_datetime(entity_df[cfg.timestamp], utc=True).astype(_UTC_NS)
    return entity_df[keys].assign(**{cfg.timestamp: times}).reset_index(drop=True)


def online_rows(store: FeatureStore, cfg: PlatformConfig, entity_ids: list[int]) -> pd.DataFrame:
    """The latest materialized features of each id (one row per id, config column order).

    Raises :class:`UnknownEntityError` naming every id the online store does not hold, and
    :class:`OnlineStoreUnavailableError` when the online store refuses or times out.
    """
    if not entity_ids:
        raise DataError(f"no {cfg.entity} given")
    service = feature_service(store, cfg)
    try:
        response = store.get_online_features(
            features=service, entity_rows=[{cfg.entity: int(i)} for i in entity_ids]
        )
    except _outages() as exc:
        kind = store.config.online_store.type
        raise OnlineStoreUnavailableError(
            f"online store ({kind}) unavailable: {' '.join(str(exc).split())}"
        ) from None
    unknown = _unknown_ids(response, cfg, entity_ids)
    if unknown:
        raise UnknownEntityError(cfg.entity, unknown)
    return response.to_df()[[cfg.entity, *cfg.feature_names]]


def _outages() -> tuple[type[BaseException], ...]:
    """The exceptions that mean the online store is down: connection refused, timed out (Redis,
    when its client is installed; the embedded SQLite store has no network)."""
    try:
        from redis.exceptions import ConnectionError as RedisDown
        from redis.exceptions import TimeoutError as RedisTimeout
    except ImportError:  # pragma: no cover - the embedded install has no Redis client
        return (TimeoutError, ConnectionError)
    return (RedisDown, RedisTimeout, TimeoutError, ConnectionError)


def _unknown_ids(response: OnlineResponse, cfg: PlatformConfig, entity_ids: list[int]) -> list[int]:
    """Ids whose every feature came back NOT_FOUND (Feast's answer for a key it never stored)."""
    names = response.proto.metadata.feature_names.val
    statuses = [
        v.statuses for n, v in zip(names, response.proto.results, strict=True) if n != cfg.entity
    ]
    return [
        int(i)
        for k, i in enumerate(entity_ids)
        if all(s[k] == FieldStatus.NOT_FOUND for s in statuses)
    ]
