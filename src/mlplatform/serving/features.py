"""Entity ids → feature rows from the Feast online store (the Michelangelo pattern)."""

from __future__ import annotations

import pandas as pd

from mlplatform.config import PlatformConfig
from mlplatform.serving.inputs import Lookup


def online_lookup(cfg: PlatformConfig) -> Lookup:
    """A function ids → DataFrame of the model's features (UnknownEntityError names bad ids)."""
    from mlplatform.features import online_rows, open_store

    store = open_store(cfg)

    def lookup(ids: list[int]) -> pd.DataFrame:
        return online_rows(store, cfg, ids)[list(cfg.feature_names)]

    return lookup
