"""Canary accounting on the sink path counts 5xx and timeouts only, as the router does (issue
13): KServe's logger sends no response event for a 4xx, so a request without a response is
a server error only when its body is one the predictor would accept. The sink runs as an app
on loopback with the model's config beside its own; the events are the logger's."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from tests.support.router import MODEL, cloud_event, running

from mlplatform.config import ServeConfig
from mlplatform.serving import sink

ROOT = Path(__file__).resolve().parents[2]
GOOD = {"instances": [[60.0, 2, 10.0, 3.0, "d1"]]}  # house-price: 4 numbers and a district
MALFORMED = [
    b'{"instances": [[60.0, 2',  # not JSON
    b'{"rows": [[60.0, 2, 10.0, 3.0, "d1"]]}',  # no instances
    b'{"instances": [[60.0, 2, 10.0]]}',  # too short
    b'{"instances": [[60.0, "two", 10.0, 3.0, "d1"]]}',  # not a number
    b'{"instances": [{"area_m2": 60.0}]}',  # missing features
]


def stats(tmp_path: Path, configs: Path) -> dict[str, dict[str, float]]:
    """Canary (v2) figures after 95 answered requests, the 5 malformed ones and 2 valid
    requests that got no response."""
    serve = ServeConfig(payload_store=f"sqlite:///{tmp_path}/sink.db", response_grace_seconds=0.2)
    checks = sink.config_checks(configs)
    app = sink.create_app(serve, task="regression", feedback_token=None, checks=checks)
    reply = {"predictions": [3.0], "model_version": "2"}
    with running(app) as url, httpx.Client(base_url=url) as c:
        for i in range(95):
            assert c.post("/", **cloud_event("request", f"ok{i}", GOOD, "v2")).status_code == 200
            assert c.post("/", **cloud_event("response", f"ok{i}", reply, "v2")).status_code == 200
        for i, body in enumerate(MALFORMED):
            bad = cloud_event("request", f"bad{i}", {}, "v2")
            bad["content"] = body
            assert c.post("/", **bad).status_code == 200
        for i in range(2):
            assert c.post("/", **cloud_event("request", f"lost{i}", GOOD, "v2")).status_code == 200
        deadline = time.monotonic() + 10  # past the grace, the silent requests are settled
        while True:
            doc: dict[str, dict[str, float]] = c.get("/stats", params={"model": MODEL}).json()
            if doc.get("v2", {}).get("requests") == 102 or time.monotonic() > deadline:
                return doc
            time.sleep(0.02)


def test_client_mistakes_are_not_canary_errors(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    configs.mkdir()
    shutil.copy(ROOT / "configs" / f"{MODEL}.yaml", configs)
    v2 = stats(tmp_path, configs)["v2"]
    assert v2["requests"] == 102 and v2["errors"] == 2  # the two valid ones without a response
    assert abs(v2["error_rate"] - 2 / 102) < 1e-12


def test_without_the_models_config_every_silent_request_is_an_error(tmp_path: Path) -> None:
    """The conservative fallback (and the negative control of the test above)."""
    v2 = stats(tmp_path, tmp_path)["v2"]  # no house-price.yaml there
    assert v2["requests"] == 102 and v2["errors"] == 7


def test_the_sink_refuses_a_body_over_the_cap_and_keeps_serving(tmp_path: Path) -> None:
    serve = ServeConfig(payload_store=f"sqlite:///{tmp_path}/sink.db", max_body_bytes=10_000)
    app = sink.create_app(serve, task="regression", feedback_token=None)
    with running(app) as url, httpx.Client(base_url=url) as c:
        big = cloud_event("request", "big", {"instances": [[1.0] * 5] * 1000}, "v2")
        refused = c.post("/", **big)
        assert refused.status_code == 413 and "max_body_bytes=10000" in refused.json()["error"]

        def chunks() -> Iterator[bytes]:
            yield from (big["content"][i : i + 4096] for i in range(0, len(big["content"]), 4096))

        streamed = c.post("/", headers=big["headers"], content=chunks())
        assert streamed.status_code == 413
        assert c.post("/", **cloud_event("request", "ok", GOOD, "v2")).status_code == 200
