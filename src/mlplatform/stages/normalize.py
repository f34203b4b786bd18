"""Stage 2, normalize: split, fit the scaler on the training split only, write the splits."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mlplatform.config import PlatformConfig
from mlplatform.core.scaling import FeatureScaler, TargetScaler
from mlplatform.core.training import Normalization, fit_normalization, split_frame
from mlplatform.stages.io import SPLITS, read_data, read_json, write_json


def normalize_step(
    cfg: PlatformConfig, dataset: Path, scaler_out: Path, split_out: dict[str, Path]
) -> dict[str, int]:
    """Split, fit the scaler on train only, write it and each split (raw + ``n__`` columns)."""
    splits = split_frame(cfg, read_data(dataset))
    scaler, target = fit_normalization(cfg, splits.train)
    write_json(scaler_out, {"features": scaler.to_dict(), "target": vars(target)})
    for name in SPLITS:
        part: pd.DataFrame = getattr(splits, name)
        design = pd.DataFrame(
            scaler.transform(part), columns=[f"n__{c}" for c in scaler.design_names]
        )
        split_out[name].parent.mkdir(parents=True, exist_ok=True)
        pd.concat([part, design], axis=1).to_parquet(split_out[name], index=False)
    return {name: len(getattr(splits, name)) for name in SPLITS}


def read_normalization(path: Path) -> Normalization:
    doc = read_json(path)
    return FeatureScaler.from_dict(doc["features"]), TargetScaler(**doc["target"])
