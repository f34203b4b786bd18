"""The router's bounds (issue 13): a payload log that cannot store a request (SQLite's
"database or disk is full", forced with ``PRAGMA max_page_count`` on the writer's own
connection) is a 503 with the reason and a counted metric, never a 500, and the router
recovers when space returns; a refused body is logged truncated; the recent predictions kept
to score feedback stay within their byte bound."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.router import MODEL, body, router_config, running, stand_in

from mlplatform.serving.metrics import RecentPredictions
from mlplatform.serving.router import RouterSettings, create_admin_app, create_app
from mlplatform.serving.router.messages import REJECTED_BODY_BYTES

pytestmark = pytest.mark.slow
TOKENS = {"feedback_token": "fb", "admin_token": "adm"}


@pytest.fixture()
def router(tmp_path: Path) -> Iterator[tuple[str, Any, str]]:
    with running(stand_in(1.0, version="1")) as stable:
        cfg = router_config(tmp_path, canary_percent=0, max_body_bytes=1_000_000)
        app = create_app(cfg, RouterSettings(stable, **TOKENS), rng=random.Random(1))
        with running(app) as url, running(create_admin_app(app.state.router)) as admin:
            yield url, app.state.router, admin


def writer_sql(state: Any, sql: str) -> None:
    """Run ``sql`` on the payload log's writer connection (a PRAGMA is per connection)."""
    state.store.transaction(lambda conn: conn.exec_driver_sql(sql)).result()


def test_a_full_payload_log_is_a_503_with_the_reason_and_a_metric(
    router: tuple[str, Any, str],
) -> None:
    url, state, admin = router
    path = f"{url}/v1/models/{MODEL}:predict"
    assert httpx.post(path, json=body()).status_code == 200
    pages = state.store.engine.connect().exec_driver_sql("PRAGMA page_count").scalar()
    writer_sql(state, f"PRAGMA max_page_count = {pages}")  # no room for one more page
    big = {"instances": [[random.random(), random.random()] for _ in range(2000)]}
    full = httpx.post(path, json=big)
    assert full.status_code == 503, full.text
    assert "full" in full.json()["error"] and full.headers["x-request-id"]
    metrics = httpx.get(f"{admin}/metrics").text
    assert "payload_log_failures_total 1.0" in metrics
    writer_sql(state, "PRAGMA max_page_count = 1073741823")  # space again
    again = httpx.post(path, json=big)
    assert again.status_code == 200, again.text
    ids = state.store.ids()
    assert again.headers["x-request-id"] in ids and full.headers["x-request-id"] not in ids


def test_a_refused_body_is_logged_truncated(router: tuple[str, Any, str]) -> None:
    url, state, _ = router
    bad = b'{"instances": "' + b"x" * 100_000 + b'"}'
    r = httpx.post(f"{url}/v1/models/{MODEL}:predict", content=bad)
    assert r.status_code == 400
    row = (
        state.store.requests(0, time.time() + 1)
        .set_index("request_id")
        .loc[r.headers["x-request-id"]]
    )
    kept = row["request"]
    assert kept.startswith('{"instances": "xxx') and len(kept) < REJECTED_BODY_BYTES + 100
    assert f"{len(bad) - REJECTED_BODY_BYTES} more bytes not kept" in kept


def test_recent_predictions_stay_within_their_byte_bound() -> None:
    recent = RecentPredictions(capacity=10**6, max_bytes=80_000)
    for i in range(200):  # 200 requests of 1,000 predictions: 1.6 MB unbounded
        recent.add(f"r{i}", "stable", 0, [float(i)] * 1000)
        assert recent.bytes <= 80_000
    assert recent.get("r199") == ("stable", 0, [199.0] * 1000)  # the newest are kept
    assert recent.get("r189") is None and recent.bytes == 80_000  # 10 requests fit
    recent.add("huge", "canary", 0, [0.0] * 20_000)  # larger than the bound: not kept
    assert recent.get("huge") is None and recent.get("r199") is not None
    probabilities = RecentPredictions()
    probabilities.add("p", "canary", 1, [[0.2, 0.8], [0.9, 0.1]])
    assert probabilities.get("p") == ("canary", 1, [0.8, 0.1])  # P(class 1), as scored
