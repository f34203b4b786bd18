"""Stand-in predictors (tiny Starlette apps speaking KServe's v1/v2 shapes) served by uvicorn
in background threads, for router and rollout tests."""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from mlplatform.config import PlatformConfig, load_config

MODEL = "house-price"
ROOT = Path(__file__).resolve().parents[2]


def stand_in(offset: float, fail: bool = False, version: str = "1") -> Starlette:
    """A predictor answering ``offset + sum(row)`` per row (HTTP 500 for all when ``fail``;
    400 for a row ``"bad"``), with KServe's v1 and v2 request/response shapes."""

    def rows_or_error(rows: list[Any]) -> JSONResponse | list[float]:
        if fail:
            return JSONResponse({"error": "stand-in canary is broken"}, 500)
        if "bad" in rows:
            return JSONResponse({"error": "row 'bad' is not a list of numbers"}, 400)
        return [offset + sum(r) if isinstance(r, list) else offset for r in rows]

    async def predict(request: Request) -> JSONResponse:
        preds = rows_or_error((await request.json())["instances"])
        if isinstance(preds, JSONResponse):
            return preds
        return JSONResponse({"predictions": preds, "model_name": MODEL, "model_version": version})

    async def infer(request: Request) -> JSONResponse:
        first = (await request.json())["inputs"][0]
        n = first["shape"][0]
        preds = rows_or_error([[0.0]] * n)
        if isinstance(preds, JSONResponse):
            return preds
        out = {"name": "predictions", "shape": [n], "datatype": "FP64", "data": preds}
        return JSONResponse({"model_name": MODEL, "model_version": version, "outputs": [out]})

    async def meta(request: Request) -> JSONResponse:
        return JSONResponse({"name": MODEL, "versions": [version], "ready": True})

    return Starlette(
        routes=[
            Route("/v1/models/{name}:predict", predict, methods=["POST"]),
            Route("/v2/models/{name}/infer", infer, methods=["POST"]),
            Route("/v2/models/{name}", meta),
            Route("/v2/models/{name}/ready", meta),
            Route("/v2/health/ready", meta),
        ]
    )


@contextmanager
def running(app: Any, port: int = 0) -> Iterator[str]:
    """Serve ``app`` with uvicorn on loopback ``port`` (0: an ephemeral one) in a background
    thread."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


def body(n: int = 1) -> dict[str, Any]:
    return {"instances": [[random.random(), random.random()] for _ in range(n)]}


def router_config(tmp: Path, **serve: Any) -> PlatformConfig:
    """The config a router for :data:`MODEL` runs with: its payload log under ``tmp``, and
    these ``serve`` settings."""
    cfg = load_config(ROOT / f"configs/{MODEL}.yaml", env={})
    return cfg.with_overrides(serve={"payload_store": f"sqlite:///{tmp}/payloads.db", **serve})


def register(reg: Any, fidelity: float = 0.9) -> str:
    """A new model version whose run logged ``lime_fidelity_r2_mean``."""
    run = reg.client.create_run(reg.experiment_id())
    reg.client.log_metric(run.info.run_id, "lime_fidelity_r2_mean", fidelity)
    reg.client.set_terminated(run.info.run_id)
    source = f"{reg.cfg.artifact_root}/model"
    mv = reg.client.create_model_version(MODEL, source, run_id=run.info.run_id)
    return str(mv.version)


def cloud_event(
    kind: str, rid: str, data: dict[str, Any], endpoint: str = "default"
) -> dict[str, Any]:
    """A KServe logger CloudEvent (``pkg/logger``) of the predictor, as the sink receives it."""
    return {
        "headers": {
            "ce-id": rid,
            "ce-type": f"org.kubeflow.serving.inference.{kind}",
            "ce-source": "http://localhost:9081/",
            "ce-specversion": "1.0",
            "ce-inferenceservicename": MODEL,
            "ce-endpoint": endpoint,
            "ce-component": "predictor",
            "content-type": "application/json",
        },
        "content": orjson.dumps(data),
    }
