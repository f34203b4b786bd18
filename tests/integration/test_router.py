"""The canary router on loopback in front of two stand-in predictors (tiny Starlette apps that
speak the KServe v1/v2 shapes), served by uvicorn in background threads."""

from __future__ import annotations

import random
import socket
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.router import MODEL, body, router_config, running, stand_in

from mlplatform.serving.router import RouterSettings, create_admin_app, create_app

pytestmark = pytest.mark.slow
TOKENS = {"feedback_token": "feedback-secret", "admin_token": "admin-secret"}
FEEDBACK = {"Authorization": "Bearer feedback-secret"}
ADMIN = {"Authorization": "Bearer admin-secret"}


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[str, str]]:
    with running(stand_in(1.0, version="1")) as stable, running(stand_in(2.0, version="2")) as can:
        yield stable, can


@pytest.fixture()
def router(tmp_path: Path, upstreams: tuple[str, str]) -> Iterator[tuple[str, Any, str]]:
    """(client URL, the CanaryRouter, admin URL)."""
    cfg = router_config(tmp_path, canary_percent=30, max_body_bytes=4096, max_instances=20)
    settings = RouterSettings(
        upstreams[0], upstreams[1], stable_version="1", canary_version="2", **TOKENS
    )
    app = create_app(cfg, settings, rng=random.Random(7))
    with running(app) as url, running(create_admin_app(app.state.router)) as admin:
        yield url, app.state.router, admin


def predict(client: httpx.Client, url: str, **kw: Any) -> httpx.Response:
    return client.post(f"{url}/v1/models/{MODEL}:predict", **kw)


def test_split_matches_percentage_and_every_request_is_logged(
    router: tuple[str, Any, str],
) -> None:
    url, state, admin = router
    n = 2000

    def send(chunk: range) -> list[tuple[str, str, float]]:
        with httpx.Client(timeout=30) as c:
            out = []
            for _ in chunk:
                r = predict(c, url, json={"instances": [[0.0]]})
                assert r.status_code == 200, r.text
                out.append((r.headers["x-request-id"], r.headers["x-mlplatform-variant"],
                            r.json()["predictions"][0]))  # fmt: skip
            return out

    with ThreadPoolExecutor(8) as pool:
        seen = [x for part in pool.map(send, [range(i, n, 8) for i in range(8)]) for x in part]
    canary = sum(v == "canary" for _, v, _ in seen)
    sd = (n * 0.3 * 0.7) ** 0.5
    assert abs(canary - n * 0.3) < 4 * sd, canary
    assert all(p == (2.0 if v == "canary" else 1.0) for _, v, p in seen)  # really that variant
    logged = state.store.requests(0, time.time() + 1).set_index("request_id")
    assert len(logged) == n and set(logged.index) == {rid for rid, _, _ in seen}
    assert all(logged.loc[rid, "variant"] == v for rid, v, _ in seen)
    assert set(logged["model_version"]) == {"1", "2"}
    stats = httpx.get(f"{admin}/admin/stats", headers=ADMIN).json()
    assert stats["canary"]["requests"] == canary and stats["stable"]["requests"] == n - canary
    assert stats["canary"]["predictions"][:3] == [2.0, 2.0, 2.0]


def test_pin_header_with_the_admin_token_and_router_issued_ids(
    router: tuple[str, Any, str],
) -> None:
    url, _, _ = router
    with httpx.Client() as c:
        for variant, version in (("canary", "2"), ("stable", "1")):
            for _ in range(20):
                rid = str(uuid.uuid4())
                headers = {"x-mlplatform-variant": variant, "x-request-id": rid, **ADMIN}
                r = predict(c, url, json=body(), headers=headers)
                assert r.status_code == 200
                assert r.headers["x-mlplatform-variant"] == variant
                assert r.headers["x-model-version"] == version
                assert r.headers["x-request-id"] != rid  # the router issues the id
        bad = predict(c, url, json=body(), headers={"x-mlplatform-variant": "blue", **ADMIN})
        assert bad.status_code == 400 and "stable' or 'canary" in bad.json()["error"]


def test_v2_infer_and_metadata(router: tuple[str, Any, str]) -> None:
    url, state, _ = router
    tensor = {"name": "x", "shape": [3, 2], "datatype": "FP64", "data": [1, 2, 3, 4, 5, 6]}
    r = httpx.post(f"{url}/v2/models/{MODEL}/infer", json={"inputs": [tensor]})
    assert r.status_code == 200 and r.json()["outputs"][0]["shape"] == [3]
    row = state.store.requests(0, time.time() + 1).iloc[-1]
    assert (row["endpoint"], row["n_instances"]) == ("infer", 3)
    for path in (f"/v2/models/{MODEL}", f"/v2/models/{MODEL}/ready", "/v2/health/ready"):
        assert httpx.get(url + path).status_code == 200, path
    assert httpx.get(f"{url}/v2/models/nope").status_code == 404
    assert httpx.get(f"{url}/v2/health/live").json() == {"live": True}
    assert httpx.get(f"{url}/healthz").json()["ok"] is True


def test_feedback_attaches_ground_truth(router: tuple[str, Any, str]) -> None:
    url, state, admin = router
    with httpx.Client(headers=FEEDBACK) as c:
        pinned = {"x-mlplatform-variant": "stable", **ADMIN}
        ids = [predict(c, url, json=body(2), headers=pinned).headers["x-request-id"]
               for _ in range(3)]  # fmt: skip
        one = c.post(f"{url}/v1/feedback", json={"request_id": ids[0], "label": [1.0, 1.0]})
        assert one.json() == {"accepted": 1, "stored": 1}
        many = [{"request_id": i, "label": [0.0, 0.0]} for i in ids[1:]]
        assert c.post(f"{url}/v1/feedback", json=many).json() == {"accepted": 2, "stored": 2}
        unknown = c.post(f"{url}/v1/feedback", json={"request_id": "nope", "label": 1})
        assert unknown.status_code == 404 and unknown.json()["unknown"] == ["nope"]
        assert "not in the payload log" in unknown.json()["error"]
        assert c.post(f"{url}/v1/feedback", json={"label": 1}).status_code == 400
    w = state.store.window(0, time.time() + 1)
    assert w.set_index("request_id").loc[ids[0], "label"].tolist() == [1.0, 1.0]
    assert httpx.get(f"{admin}/admin/stats", headers=ADMIN).json()["stable"]["labelled"] == 6


def test_bad_requests_get_reasons_and_the_router_keeps_serving(
    router: tuple[str, Any, str],
) -> None:
    url, state, _ = router
    path = f"{url}/v1/models/{MODEL}:predict"
    cases = [
        (httpx.post(path, content=b"{not json"), 400, "malformed JSON"),
        (httpx.post(path, json={"rows": []}), 400, '"instances" list'),
        (httpx.post(path, content=b"[" + b"1," * 3000 + b"1]"), 413, "max_body_bytes"),
        (httpx.post(path, json=body(21)), 413, "max_instances"),
        (httpx.post(f"{url}/v1/models/other:predict", json=body()), 404, "unknown model"),
        (httpx.post(path, json={"instances": ["bad"]}), 400, "not a list of numbers"),
        (httpx.post(f"{url}/v1/models/{MODEL}:explain", json=body()), 404, "no explainer"),
    ]
    for resp, status, reason in cases:
        assert resp.status_code == status, resp.text
        assert reason in resp.json()["error"]
        assert resp.headers["x-request-id"]
    assert predict(httpx.Client(), url, json=body()).status_code == 200
    logged = state.store.requests(0, time.time() + 1)
    assert len(logged) == len(cases) + 1
    assert logged["variant"].isna().sum() == len(cases) - 1  # the upstream 400 has a variant


def test_unreachable_upstream_is_a_503_counted_against_its_variant(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"  # bound, never listening
        app = create_app(router_config(tmp_path), RouterSettings(dead, **TOKENS))
        with running(app) as url, running(create_admin_app(app.state.router)) as admin:
            r = httpx.post(f"{url}/v1/models/{MODEL}:predict", json=body())
            assert r.status_code == 503 and "unavailable" in r.json()["error"]
            stats = httpx.get(f"{admin}/admin/stats", headers=ADMIN).json()["stable"]
            assert (stats["requests"], stats["errors"]) == (1, 1)
            metrics = httpx.get(f"{admin}/metrics").text  # no token: read-only counters
            assert 'errors_total{variant="stable"} 1.0' in metrics
            assert 'requests_total{status="503",variant="stable"} 1.0' in metrics
            assert "request_latency_seconds_bucket" in metrics


def test_admin_endpoints(router: tuple[str, Any, str], upstreams: tuple[str, str]) -> None:
    url, _, admin = router
    with httpx.Client(base_url=admin, headers=ADMIN) as c:
        bad = c.put("/admin/traffic", json={"canary_percent": 101})
        assert bad.status_code == 400
        assert bad.json()["error"] == "canary_percent must be an integer in 0..100, got 101"
        assert c.put("/admin/traffic", json={"canary_percent": "x"}).status_code == 400
        assert c.put("/admin/traffic", json={"canary_percent": 0}).status_code == 200
        assert all(
            predict(c, url, json=body()).headers["x-mlplatform-variant"] == "stable"
            for _ in range(30)
        )
        assert c.post("/admin/rollback").json()["drained"] is True
        assert c.get("/admin/stats").json()["canary"] is None
        assert c.put("/admin/traffic", json={"canary_percent": 5}).status_code == 409
        pinned = predict(c, url, json=body(), headers={"x-mlplatform-variant": "canary", **ADMIN})
        assert pinned.status_code == 409
        assert c.post("/admin/promote").status_code == 409
        attach = {"url": upstreams[1], "version": "2", "canary_percent": 100}
        assert c.put("/admin/canary", json=attach).status_code == 200
        assert predict(c, url, json=body()).headers["x-model-version"] == "2"
        assert c.post("/admin/promote").status_code == 200
        stats = c.get("/admin/stats").json()
        assert stats["canary"] is None and stats["stable"]["url"] == upstreams[1]
        assert predict(c, url, json=body()).headers["x-mlplatform-variant"] == "stable"


def test_load_four_clients_no_errors_no_missing_rows(router: tuple[str, Any, str]) -> None:
    url, state, _ = router
    stop = time.monotonic() + 10

    def client(k: int) -> tuple[list[str], int]:
        ids, failures = [], 0
        with httpx.Client(timeout=30) as c:
            while time.monotonic() < stop:
                r = predict(c, url, json=body(random.randint(1, 20)))
                failures += r.status_code != 200
                ids.append(r.headers.get("x-request-id", ""))
        return ids, failures

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(client, range(4)))
    sent = [i for ids, _ in results for i in ids]
    assert sum(f for _, f in results) == 0
    assert len(sent) > 500 and len(set(sent)) == len(sent)
    assert state.store.ids() == set(sent)
