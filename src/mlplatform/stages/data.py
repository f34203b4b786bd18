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


def data_step(cfg: PlatformConfig, out: Path) -> dict[str, Any]:
    """Training set from the Feast offline store (point-in-time join) for every raw event.

    The raw file (``cfg.data_path``, DVC-tracked) gives the entity ids and event times; its
    DVC md5 is the data version recorded with the model.
    """
    from mlplatform.features import apply, open_store, training_frame
    from mlplatform.features.definitions import service_name
    from mlplatform.versioning import data_version

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
