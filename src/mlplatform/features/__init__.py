"""Feast adapter: the feature store of every model, declared once from the configs.

>>> store = feature_store(Path("feature_repo"))
>>> apply(store, cfgs); materialize(store, end=datetime.now(UTC))
>>> train = training_frame(store, cfg, events)      # point-in-time features + target
>>> row = online_rows(store, cfg, [42])             # latest features, for serving
"""

from mlplatform.features.definitions import definitions, project_configs
from mlplatform.features.retrieval import online_rows, training_frame
from mlplatform.features.store import (
    apply,
    feature_store,
    materialize,
    open_store,
    refresh_online,
)

__all__ = [
    "apply",
    "definitions",
    "feature_store",
    "materialize",
    "online_rows",
    "open_store",
    "project_configs",
    "refresh_online",
    "training_frame",
]
