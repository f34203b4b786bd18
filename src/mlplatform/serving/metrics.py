"""Per-variant serving statistics: live counters in the router, Prometheus series, and the
same figures computed from the payload log (for the cluster's sink).

The JSON form of one variant (``GET /admin/stats`` of the router, ``GET /stats`` of the
sink) is what :mod:`mlplatform.serving.traffic` turns back into a
:class:`~mlplatform.core.rollout.VariantStats`::

    {"requests": 812, "errors": 0, "error_rate": 0.0, "p95_latency_ms": 3.1,
     "predictions": [0.42, ...], "ground_truth_error": 0.08, "labelled": 40,
     "explain_fidelity": null}
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from mlplatform.core.rollout import VariantStats
from mlplatform.serving.payloads import decode_predictions
from mlplatform.serving.request_check import RequestCheck

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def as_numbers(predictions: Sequence[Any]) -> list[float]:
    """Finite numbers out of predictions: scalars as they are, a list (class probabilities)
    by its last element (the positive class); anything else is skipped."""
    out = []
    for p in predictions:
        v = p[-1] if isinstance(p, list) and p else p
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
            out.append(float(v))
    return out


def abs_errors(predictions: Sequence[Any], label: Any) -> list[float]:
    """|prediction − label| per instance (one label per instance, or one for a single row)."""
    labels = label if isinstance(label, list) else [label]
    preds = as_numbers(predictions)
    if len(labels) != len(preds):
        return []
    return [abs(p - float(y)) for p, y in zip(preds, labels, strict=True) if _is_number(y)]


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


class VariantMetrics:
    """Live figures of one variant: counts, recent latencies, a bounded sample of recent
    predictions (the last ``reservoir`` values) and the error on labelled requests."""

    def __init__(self, reservoir: int, latency_window: int = 5000) -> None:
        self.requests = 0
        self.errors = 0
        self.latencies_ms: deque[float] = deque(maxlen=latency_window)
        self.predictions: deque[float] = deque(maxlen=reservoir)
        self.label_error_sum = 0.0
        self.labelled = 0

    def observe(self, latency_ms: float, error: bool, predictions: Sequence[Any] = ()) -> None:
        self.requests += 1
        self.errors += int(error)
        self.latencies_ms.append(latency_ms)
        self.predictions.extend(as_numbers(predictions))

    def observe_labels(self, errors: Sequence[float]) -> None:
        self.label_error_sum += float(sum(errors))
        self.labelled += len(errors)

    def to_json(self) -> dict[str, Any]:
        lat = np.fromiter(self.latencies_ms, dtype=np.float64)
        return {
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": self.errors / self.requests if self.requests else 0.0,
            "p95_latency_ms": float(np.percentile(lat, 95)) if lat.size else None,
            "predictions": list(self.predictions),
            "ground_truth_error": self.label_error_sum / self.labelled if self.labelled else None,
            "labelled": self.labelled,
            "explain_fidelity": None,
        }


def stats_from_json(doc: dict[str, Any]) -> VariantStats:
    """The :class:`VariantStats` of one variant's JSON section."""
    return VariantStats(
        requests=int(doc.get("requests", 0)),
        errors=int(doc.get("errors", 0)),
        p95_latency_ms=doc.get("p95_latency_ms"),
        predictions=np.asarray(doc.get("predictions") or [], dtype=np.float64),
        ground_truth_error=doc.get("ground_truth_error"),
        labelled=int(doc.get("labelled") or 0),
        explain_fidelity=doc.get("explain_fidelity"),
    )


class RecentPredictions:
    """request id → (variant, generation, predictions) of recent requests, so that feedback
    arriving later can be scored against the variant that answered. Bounded twice: at most
    ``capacity`` requests and ``max_bytes`` of predictions (float64, 8 bytes each; a request
    larger than the bound is not kept), the oldest evicted first."""

    def __init__(self, capacity: int = 100_000, max_bytes: int = 32 * 2**20) -> None:
        self.capacity, self.max_bytes, self.bytes = capacity, max_bytes, 0
        self._items: OrderedDict[str, tuple[str, int, NDArray[np.float64]]] = OrderedDict()

    def add(self, request_id: str, variant: str, generation: int, preds: list[Any]) -> None:
        values = np.asarray(as_numbers(preds), dtype=np.float64)
        if values.nbytes > self.max_bytes:
            return
        old = self._items.pop(request_id, None)
        self.bytes -= 0 if old is None else old[2].nbytes
        self._items[request_id] = (variant, generation, values)
        self.bytes += values.nbytes
        while len(self._items) > self.capacity or self.bytes > self.max_bytes:
            self.bytes -= self._items.popitem(last=False)[1][2].nbytes

    def get(self, request_id: str) -> tuple[str, int, list[float]] | None:
        found = self._items.get(request_id)
        return None if found is None else (found[0], found[1], found[2].tolist())


class PrometheusMetrics:
    """``requests_total{variant,status}``, ``request_latency_seconds{variant}`` and
    ``errors_total{variant}`` in a registry of their own (one per app, none global)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "requests",
            "Inference requests by variant and HTTP status.",
            ["variant", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "request_latency_seconds",
            "Upstream latency by variant.",
            ["variant"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "errors",
            "5xx and connection failures by variant.",
            ["variant"],
            registry=self.registry,
        )
        self.payload_log_failures = Counter(
            "payload_log_failures",
            "Requests answered 503 because the payload log could not store them (disk full, "
            "store down): alert on any increase.",
            registry=self.registry,
        )

    def observe(self, variant: str, status: int, seconds: float, error: bool) -> None:
        self.requests.labels(variant=variant, status=str(status)).inc()
        self.latency.labels(variant=variant).observe(seconds)
        if error:
            self.errors.labels(variant=variant).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def summarize(
    requests: pd.DataFrame, now: float, grace_seconds: float, check: RequestCheck | None = None
) -> dict[str, Any]:
    """Per-variant JSON figures from payload-log rows (:meth:`PayloadStore.requests`).

    Errors are 5xx and timeouts, as on the router: a request is an error when its status is
    ≥ 500, or when it has no response ``grace_seconds`` after it arrived (KServe's logger only
    sends responses with status 200), unless ``check`` finds its body a client's mistake
    (:mod:`.request_check`: a 4xx, counted as a request but not as an error). Requests younger
    than that without a response are not counted yet.
    """
    out: dict[str, Any] = {}
    for variant, rows in requests.groupby(requests["variant"].fillna("unknown")):
        answered = rows["response"].notna() | rows["status"].notna()
        settled = rows[answered | (rows["ts"] < now - grace_seconds)].copy()
        if check is not None:
            silent = settled["status"].isna() & settled["response"].isna()
            refused = [check.reason(body) is not None for body in settled["request"][silent]]
            settled.loc[silent[silent].index[refused], "status"] = 400
        out[str(variant)] = _frame_figures(settled)
    return out


def _frame_figures(rows: pd.DataFrame) -> dict[str, Any]:
    status = rows["status"].fillna(599)
    failed = status >= 500
    metrics = VariantMetrics(reservoir=5000, latency_window=1)
    for (_, row), err in zip(rows.iterrows(), failed, strict=True):
        preds = decode_predictions(row["response"]) or []
        latency = row["latency_ms"]
        metrics.observe(0.0 if pd.isna(latency) else float(latency), bool(err), preds)
        if row["label"] is not None:
            metrics.observe_labels(abs_errors(preds, row["label"]))
    doc = metrics.to_json()
    lat = rows["latency_ms"].dropna().to_numpy(dtype=np.float64)
    doc["p95_latency_ms"] = float(np.percentile(lat, 95)) if lat.size else None
    return doc
