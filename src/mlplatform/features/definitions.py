"""Feast objects derived from the platform configs: one declaration, used by training and serving.

Per model (``cfg``) this declares

* an :class:`~feast.Entity` named after ``cfg.entity`` without ``_id`` (``house_id`` → ``house``),
  shared by every model keyed on the same id,
* a :class:`~feast.FileSource` on ``cfg.data_path``, the Parquet file ``mlplatform data`` writes,
* ``<model>_features``: the config's features (numeric → Float64, categorical → String), online,
* ``<model>_label``: the target alone, **offline only** (``online=False``), so labels are joined
  point-in-time into training sets but are never materialized or served,
* a :class:`~feast.FeatureService` named ``cfg.model_name`` over ``<model>_features``: what the
  model reads, online and offline.

>>> cfg = load_config("configs/house-price.yaml")
>>> [type(o).__name__ for o in definitions([cfg])]
['Entity', 'FileSource', 'FeatureView', 'FeatureView', 'FeatureService']
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64, PrimitiveFeastType, String

from mlplatform.config import FeatureSpec, PlatformConfig, load_config

FeastObject = Entity | FileSource | FeatureView | FeatureService

#: ``ttl=0``: a value stays valid until a newer one is written (no look-back window).
NO_EXPIRY = timedelta(0)


def entity_name(cfg: PlatformConfig) -> str:
    """``house_id`` → ``house``: the Feast entity keyed by ``cfg.entity``."""
    return cfg.entity.removesuffix("_id")


def _snake(cfg: PlatformConfig) -> str:
    return cfg.model_name.replace("-", "_")


def feature_view_name(cfg: PlatformConfig) -> str:
    return f"{_snake(cfg)}_features"


def label_view_name(cfg: PlatformConfig) -> str:
    return f"{_snake(cfg)}_label"


def source_name(cfg: PlatformConfig) -> str:
    return f"{_snake(cfg)}_source"


def service_name(cfg: PlatformConfig) -> str:
    return cfg.model_name


def label_ref(cfg: PlatformConfig) -> str:
    """The feature reference of the target, ``<model>_label:<target>``."""
    return f"{label_view_name(cfg)}:{cfg.target}"


def feature_type(spec: FeatureSpec) -> PrimitiveFeastType:
    return Float64 if spec.kind == "numeric" else String


def label_type(cfg: PlatformConfig) -> PrimitiveFeastType:
    """0/1 labels for classification, real values for regression."""
    return Int64 if cfg.task == "classification" else Float64


def entity(cfg: PlatformConfig) -> Entity:
    return Entity(
        name=entity_name(cfg),
        join_keys=[cfg.entity],
        value_type=ValueType.INT64,
        description=f"keyed by {cfg.entity}",
    )


def source(cfg: PlatformConfig) -> FileSource:
    """The model's Parquet file; an absolute path, so every process resolves it alike."""
    return FileSource(
        name=source_name(cfg),
        path=str(cfg.data_path.resolve()),
        timestamp_field=cfg.timestamp,
        description=f"written by `mlplatform data --config configs/{cfg.model_name}.yaml`",
    )


def model_objects(cfg: PlatformConfig, ent: Entity) -> list[FeastObject]:
    """Source, feature view, label view and feature service of one model."""
    src = source(cfg)
    key = Field(name=cfg.entity, dtype=Int64)
    tags = {"model": cfg.model_name}
    features = FeatureView(
        name=feature_view_name(cfg),
        entities=[ent],
        ttl=NO_EXPIRY,
        schema=[
            key,
            *(
                Field(name=f.name, dtype=feature_type(f), description=f.description)
                for f in cfg.features
            ),
        ],
        source=src,
        online=True,
        tags=tags,
    )
    label = FeatureView(
        name=label_view_name(cfg),
        entities=[ent],
        ttl=NO_EXPIRY,
        schema=[key, Field(name=cfg.target, dtype=label_type(cfg))],
        source=src,
        online=False,
        tags=tags,
    )
    service = FeatureService(
        name=service_name(cfg),
        features=[features],
        tags=tags,
        description=f"inputs of the {cfg.model_name} model",
    )
    return [src, features, label, service]


def definitions(cfgs: Sequence[PlatformConfig]) -> list[FeastObject]:
    """Every Feast object of the given models; models on the same id share one entity."""
    entities: dict[str, Entity] = {}
    objects: list[FeastObject] = []
    for cfg in cfgs:
        ent = entities.get(entity_name(cfg))
        if ent is None:
            ent = entities[entity_name(cfg)] = entity(cfg)
            objects.append(ent)
        objects += model_objects(cfg, ent)
    return objects


def project_configs(root: Path) -> list[PlatformConfig]:
    """Every ``root/configs/*.yaml`` (environment overrides applied), data dirs made absolute."""
    cfgs = [load_config(p) for p in sorted((root / "configs").glob("*.yaml"))]
    return [
        c
        if c.data.data_dir.is_absolute()
        else c.with_overrides(data={"data_dir": str(root / c.data.data_dir)})
        for c in cfgs
    ]
