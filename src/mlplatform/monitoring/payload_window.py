"""The payload log of one window as the arrays the monitor needs.

:meth:`PayloadStore.numeric_window` gives one row per instance with the request's metadata,
``feature.<name>`` columns, ``prediction`` and ``label`` (read in bulk from the compact form
written at ingestion; :meth:`PayloadStore.window` gives the same rows decoded from the JSON
bodies, with raw predictions and labels); :func:`frame_window` splits such a frame. The monitor
itself goes from :meth:`PayloadStore.window_blocks` to the same views without that frame
(:func:`window_data`). The two views:

* rows of successful requests (HTTP 2xx) for drift: the feature frame, the predictions and
  the labels (NaN when no feedback came), and the model versions that served them;
* one entry per request, whatever its outcome, for health: latency and status.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from mlplatform.config import PlatformConfig
from mlplatform.core.alerts import Window
from mlplatform.errors import PayloadWindowError
from mlplatform.serving.payloads import PayloadStore, as_number
from mlplatform.serving.payloads.numeric import (
    Block,
    block_features,
    block_labels,
    block_predictions,
)
from mlplatform.stores import sqlite_path

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class WindowData:
    """One window of traffic: per-row arrays for drift, per-request arrays for health."""

    features: pd.DataFrame  # (rows, features) of 2xx requests, columns = cfg.feature_names
    predictions: FloatArray  # (rows,): the value, or P(class 1); NaN if not numeric
    labels: FloatArray  # (rows,): ground truth, NaN when no feedback
    latency_ms: FloatArray  # (requests,)
    status: FloatArray  # (requests,): HTTP status, NaN when no response was logged
    model_versions: dict[str, int]  # version → rows served

    @property
    def rows(self) -> int:
        return len(self.features)


def _numbers(values: Any) -> FloatArray:
    """:func:`as_number` of each value (vectorized for a float64 column: NaN where not finite)."""
    if isinstance(values, np.ndarray) and values.dtype == np.float64:
        return np.where(np.isfinite(values), values, np.nan)
    return np.array([as_number(v) for v in values], dtype=np.float64)


def _feature_frame(
    rows: pd.DataFrame, keep: NDArray[np.bool_], names: Sequence[str]
) -> pd.DataFrame:
    """The ``feature.<name>`` columns of the ``keep`` rows, named by feature."""
    missing = [n for n in names if f"feature.{n}" not in rows.columns]
    if missing and keep.any():
        raise PayloadWindowError(
            f"logged requests lack features {missing} (instances must be rows in feature "
            "order or objects keyed by feature name)"
        )
    if not keep.any():
        return pd.DataFrame(columns=list(names))
    return pd.DataFrame({n: rows[f"feature.{n}"].to_numpy()[keep] for n in names})


def _column(frame: pd.DataFrame, name: str) -> NDArray[Any]:
    return frame[name].to_numpy() if name in frame.columns else np.full(len(frame), np.nan)


def frame_window(frame: pd.DataFrame, names: Sequence[str], endpoints: Sequence[str]) -> WindowData:
    """Split :meth:`PayloadStore.numeric_window` (or :meth:`PayloadStore.window`) output into
    :class:`WindowData`; a request's first instance (``instance`` 0) stands for it in health."""
    if frame.empty:
        frame = pd.DataFrame(columns=["instance", "endpoint", "status", "latency_ms"])
    served = frame["endpoint"].isin(list(endpoints)).to_numpy()
    status = pd.to_numeric(frame["status"], errors="coerce").to_numpy(np.float64)
    requests = served & (frame["instance"].to_numpy() == 0)
    ok = served & (status >= 200) & (status < 300)
    versions = pd.Series(_column(frame, "model_version")[ok], dtype=object).fillna("unknown")
    latency = pd.to_numeric(frame["latency_ms"], errors="coerce").to_numpy(np.float64)
    return WindowData(
        features=_feature_frame(frame, ok, names),
        predictions=_numbers(_column(frame, "prediction")[ok]),
        labels=_numbers(_column(frame, "label")[ok]),
        latency_ms=latency[requests],
        status=status[requests],
        model_versions={str(k): int(v) for k, v in versions.astype(str).value_counts().items()},
    )


def window_data(
    blocks: Sequence[Block], names: Sequence[str], endpoints: Sequence[str]
) -> WindowData:
    """:class:`WindowData` straight from :meth:`PayloadStore.window_blocks`: what
    :func:`frame_window` makes of :meth:`PayloadStore.numeric_window`, in block order, without
    a frame of every instance. A block's requests share one endpoint and model version, so a
    block is in or out whole; only the features of its 2xx requests' instances are decoded."""
    wanted = set(endpoints)
    served = [b for b in blocks if b.endpoint in wanted]
    features: dict[str, list[NDArray[Any]]] = {n: [] for n in names}
    found: set[str] = set()
    predictions, labels, versions = [], [], Counter[str]()
    for b in served:
        ok: Any = np.repeat((b.status >= 200) & (b.status < 300), b.counts)
        kept = int(ok.sum())
        if not kept:
            continue
        if kept == len(ok):  # every request served: no copy
            ok = slice(None)
        columns = block_features(b, names)
        for n in names:
            column = columns.get(f"feature.{n}")
            if column is None:  # absent here: NaN, as a frame of all blocks would hold
                features[n].append(np.full(kept, np.nan))
            else:
                found.add(n)
                features[n].append(column[ok])
        predictions.append(block_predictions(b)[ok])
        labels.append(block_labels(b)[ok])
        versions["unknown" if pd.isna(b.model_version) else str(b.model_version)] += kept
    missing = [n for n in names if n not in found]
    if predictions and missing:
        raise PayloadWindowError(
            f"logged requests lack features {missing} (instances must be rows in feature "
            "order or objects keyed by feature name)"
        )
    frame = (
        pd.DataFrame({n: np.concatenate(features[n]) for n in names})
        if predictions
        else pd.DataFrame(columns=list(names))
    )
    return WindowData(
        features=frame,
        predictions=_numbers(_joined(predictions)),
        labels=_numbers(_joined(labels)),
        latency_ms=_joined([b.latency_ms for b in served]),
        status=_joined([b.status for b in served]),
        model_versions=dict(versions.most_common()),
    )


def _joined(parts: list[FloatArray]) -> FloatArray:
    return np.concatenate(parts) if parts else np.empty(0)


def payload_frame(
    payload_store: str | Path, window: Window, cfg: PlatformConfig, endpoints: Sequence[str]
) -> WindowData:
    """The requests for ``cfg.model_name`` logged in ``[window.start, window.end)`` in the
    payload log at ``payload_store`` (a store URL, or the path of a SQLite file)."""
    path = sqlite_path(payload_store)
    if path is not None and not path.is_file():
        raise PayloadWindowError(f"no payload log at {path} (serve the model first)")
    with PayloadStore(payload_store) as store:
        blocks = store.window_blocks(window.start, window.end, cfg.model_name)
    return window_data(blocks, cfg.feature_names, endpoints)
