"""Files the stages read and write: Parquet data, JSON documents, the three splits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from mlplatform.core.datasets import Splits
from mlplatform.errors import DataError

SPLITS = ("train", "val", "test")


def write_json(path: Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically (a temporary file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str), encoding="utf-8")
    tmp.replace(path)
    return path


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def read_data(path: Path) -> pd.DataFrame:
    """A Parquet file as a DataFrame; a missing or unreadable file is a :class:`DataError`."""
    if not path.exists():
        raise DataError(f"no data at {path}: run `mlplatform data --config ...` first")
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise DataError(f"{path} is not a readable Parquet file: {exc}") from None


def read_splits(paths: dict[str, Path]) -> Splits:
    return Splits(*(read_data(paths[n]) for n in SPLITS))


def flat_metrics(doc: dict[str, Any], split: str = "test") -> dict[str, float]:
    """Test-split metrics from a metrics document, as one flat dict."""
    return {k: float(v) for k, v in doc["metrics"][split].items()}
