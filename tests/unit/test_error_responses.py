"""Each HTTP adapter answers a platform error with its class's status and the reason: the
KServe servers (one FastAPI exception handler) and the router (one mapping, ``error_reply``)."""

from __future__ import annotations

import socket
from pathlib import Path

import orjson
import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient
from tests.support.router import MODEL, body, router_config

from mlplatform.errors import (
    DataError,
    FeatureRepoError,
    GateFailedError,
    ModelVersionNotFoundError,
    PlatformError,
    TrafficError,
    UnknownRequestError,
)
from mlplatform.serving import error_handler
from mlplatform.serving.router import RouterSettings, create_admin_app, create_app, error_reply

#: One error of each kind and the status it must become (written out, not read from the class).
KINDS = [
    (DataError("feature 'age' must be a number"), 400),
    (ModelVersionNotFoundError("model 'm' has no version 9"), 404),
    (TrafficError("no canary to promote"), 409),
    (FeatureRepoError("entity ids need the feature store: redis down"), 503),
    (GateFailedError("gate failed"), 500),
]


def _raising_app() -> FastAPI:
    app = FastAPI()

    @app.post("/raise/{index}")
    async def boom(index: int) -> None:
        raise KINDS[index][0]

    error_handler.install(app)
    return app


@pytest.mark.parametrize("index", range(len(KINDS)), ids=[type(e).__name__ for e, _ in KINDS])
def test_kserve_handler_answers_each_kind_with_its_status(index: int) -> None:
    exc, status = KINDS[index]
    with TestClient(_raising_app(), raise_server_exceptions=False) as client:
        r = client.post(f"/raise/{index}")
    assert r.status_code == status
    assert r.json() == {"error": str(exc)}  # the body KServe's own handlers send


def test_kserve_handler_is_installed_on_the_app_kserve_serves() -> None:
    from kserve import model_server

    error_handler.install()
    assert model_server.app.exception_handlers[PlatformError] is error_handler.handle


@pytest.mark.parametrize(("exc", "status"), KINDS, ids=[type(e).__name__ for e, _ in KINDS])
def test_router_reply_carries_the_status_and_reason(exc: PlatformError, status: int) -> None:
    reply = error_reply(exc, seconds=0.25)
    assert (reply.status, reply.seconds, reply.note) == (status, 0.25, str(exc))
    assert orjson.loads(reply.content) == {"error": str(exc)}


def test_router_reply_lists_unknown_request_ids() -> None:
    reply = error_reply(UnknownRequestError(["nope"]))
    assert reply.status == 404 and orjson.loads(reply.content)["unknown"] == ["nope"]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_router_routes_answer_each_kind_with_its_status(tmp_path: Path) -> None:
    """Through the router's own routes: 400, 404, 409 and 503 (stable predictor down)."""
    stable = f"http://127.0.0.1:{_closed_port()}"
    settings = RouterSettings(stable, feedback_token="f", admin_token="a")
    app = create_app(router_config(tmp_path), settings)
    admin = TestClient(create_admin_app(app.state.router), headers={"Authorization": "Bearer a"})
    with TestClient(app) as c, admin:
        bad = admin.put("/admin/traffic", json={"canary_percent": 101})
        unknown = c.post("/v1/models/other:predict", json=body())
        label = {"request_id": "nope", "label": 1}
        feedback = c.post("/v1/feedback", json=label, headers={"Authorization": "Bearer f"})
        conflict = admin.post("/admin/promote")
        down = c.post(f"/v1/models/{MODEL}:predict", json=body())
    assert bad.status_code == 400 and "canary_percent" in bad.json()["error"]
    assert unknown.status_code == 404 and "unknown model 'other'" in unknown.json()["error"]
    assert feedback.status_code == 404 and feedback.json()["unknown"] == ["nope"]
    assert conflict.status_code == 409 and "no canary" in conflict.json()["error"]
    assert down.status_code == 503 and "unavailable" in down.json()["error"]
