"""Helpers of the payload-block tests (``test_payload_blocks``, ``test_payload_compaction``):
the JSON path as the oracle, a row-by-row comparison, block counts, numbered records."""

from __future__ import annotations

import json
import math
import threading
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from mlplatform.serving.payloads import PayloadRecord, PayloadStore, as_number
from mlplatform.stores.schema import label_blocks, payload_blocks, payloads

T0 = 1_767_225_600.0
NAMES = ("area", "rooms", "district")


def expected(store: PayloadStore, since: float, until: float) -> pd.DataFrame:
    """The JSON path, with predictions and labels as the monitor reads them."""
    frame = store.window(since, until, "m", NAMES)
    frame["prediction"] = [as_number(p) for p in frame["prediction"]]
    frame["label"] = [as_number(y) for y in frame["label"]]
    return frame


def _plain(x: Any) -> Any:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return None
    return float(x) if isinstance(x, int | float | np.number) else x


def compare(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """``numeric_window`` equals the JSON path, row by row in time order, NaN as None."""
    columns = ["endpoint", "status", "latency_ms", "model_version", "instance"]
    columns += [*sorted(c for c in want if c.startswith("feature.")), "prediction", "label"]
    assert sorted(got.columns) == sorted(columns)
    assert len(got) == len(want) > 0
    a, b = (
        [[_plain(v) for v in t] for t in f[columns].itertuples(index=False)] for f in (got, want)
    )
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        assert x == y, f"row {i} ({want['request_id'].iloc[i]}): numeric {x} != json {y}"


def counts(store: PayloadStore) -> tuple[int, int, int]:
    """(payload_blocks, label_blocks, rows in a block)."""
    with store.engine.connect() as conn:
        n = [conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
             for t in (payload_blocks, label_blocks)]  # fmt: skip
        blocked = sa.select(sa.func.count()).where(payloads.c.block_key.is_not(None))
        return n[0], n[1], conn.execute(blocked).scalar_one()


def record(i: int, ts: float, n: int = 1) -> PayloadRecord:
    """A whole record whose latency is its number ``i`` (so a numeric frame names it)."""
    rows = [[float(i), j, f"d{i % 5}"] for j in range(n)]
    req, resp = json.dumps({"instances": rows}), json.dumps({"predictions": [i + 0.5] * n})
    return PayloadRecord(
        f"r{i:03d}", ts, "m", "stable", "1", "predict", 200, float(i), n, req, resp
    )


def gated(store: PayloadStore) -> threading.Event:
    """Hold the writer until the event returned is set: what is queued meanwhile is one batch."""
    gate, holding = threading.Event(), threading.Event()

    def hold(conn: sa.Connection) -> None:
        holding.set()
        gate.wait(10)

    store.transaction(hold)
    assert holding.wait(10)  # the writer is in hold(): its batch is this job alone
    return gate
