"""The payload sink on the cluster: KServe's inference logger posts CloudEvents here and they
land in the same ``payloads``/``feedback`` schema as the local router writes.

    python -m mlplatform.serving sink --config /etc/mlplatform/house-price.yaml --port 8080

It writes ``serve.payload_db`` of the config (the chart sets it to the volume's
``/data/payloads.db`` with ``MLPLATFORM__SERVE__PAYLOAD_DB``, as for the monitor jobs).

KServe sends one event per request (``ce-type: org.kubeflow.serving.inference.request``) and
one per successful response (``...inference.response``, only for HTTP 200), in binary mode:
attributes in ``ce-*`` headers, the body as it was. Both carry the same ``ce-id`` (the
request id) and are merged into one row, in whatever order they arrive; ``ce-endpoint``
(``default`` or ``canary``) gives the variant and ``ce-inferenceservicename`` the model.

``GET /stats?model=<isvc>&since=<unix ts>`` returns the per-variant figures the rollout
controller reads (:class:`~mlplatform.serving.traffic.KServeBackend`): a request without a
response ``serve.response_grace_seconds`` after it arrived counts as an error. ``POST /v1/feedback``
attaches ground truth as on the router.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import time
from collections.abc import Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mlplatform.config import ServeConfig
from mlplatform.errors import EventError, PlatformError, RequestError
from mlplatform.serving.metrics import summarize
from mlplatform.serving.payloads import PayloadStore, decode_instances
from mlplatform.serving.process import load_platform_config
from mlplatform.serving.router import error_response, json_response, parse_feedback

REQUEST = "org.kubeflow.serving.inference.request"
RESPONSE = "org.kubeflow.serving.inference.response"
VARIANTS = {"default": "stable", "canary": "canary"}


def event_time(value: str | None, default: float) -> float:
    """Unix time of an RFC 3339 ``ce-time``; ``default`` when absent or unreadable."""
    if not value:
        return default
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return default


def read_event(headers: Mapping[str, str], body: bytes, now: float) -> dict[str, Any]:
    """The attributes and body of a binary-mode (``ce-*`` headers) or structured-mode
    (``application/cloudevents+json``) CloudEvent."""
    if headers.get("content-type", "").startswith("application/cloudevents+json"):
        try:
            env = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise EventError(f"malformed structured CloudEvent: {exc}") from None
        attrs = {k: str(v) for k, v in env.items() if k not in ("data", "data_base64")}
        data = env.get("data")
        body = data if isinstance(data, bytes) else orjson.dumps(data)
    else:
        attrs = {k[3:]: v for k, v in headers.items() if k.lower().startswith("ce-")}
    if not attrs.get("id") or attrs.get("type") not in (REQUEST, RESPONSE):
        raise EventError(
            f"not a KServe inference event: id={attrs.get('id')!r}, type={attrs.get('type')!r}"
        )
    return {
        "id": attrs["id"],
        "kind": "request" if attrs["type"] == REQUEST else "response",
        "ts": event_time(attrs.get("time"), now),
        "model": attrs.get("inferenceservicename") or attrs.get("source", ""),
        "variant": VARIANTS.get(attrs.get("endpoint", "default"), attrs.get("endpoint")),
        "body": body.decode(errors="replace"),
    }


def merge_event(conn: sqlite3.Connection, ev: dict[str, Any]) -> None:
    """Upsert one event into its request's row (runs in the payload log's writer thread).

    Whichever half arrives first creates the row with its own time in ``ts``; the request
    half then sets ``ts`` to the request time and ``latency_ms`` = response − request time.
    """
    if ev["kind"] == "request":
        instances = decode_instances(ev["body"])
        doc = _json(ev["body"])
        endpoint = "infer" if isinstance(doc, dict) and "inputs" in doc else "predict"
        n = None if instances is None else len(instances)
        conn.execute(
            "INSERT INTO payloads (request_id, ts, model, variant, endpoint, n_instances, request)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(request_id) DO UPDATE SET"
            " ts = excluded.ts, model = excluded.model, variant = excluded.variant,"
            " endpoint = excluded.endpoint, n_instances = excluded.n_instances,"
            " request = excluded.request, latency_ms = CASE WHEN payloads.response IS NOT NULL"
            " THEN MAX(payloads.ts - excluded.ts, 0) * 1000 END",
            (ev["id"], ev["ts"], ev["model"], ev["variant"], endpoint, n, ev["body"]),
        )
        return
    doc = _json(ev["body"])
    version = doc.get("model_version") if isinstance(doc, dict) else None
    conn.execute(
        "INSERT INTO payloads (request_id, ts, model, variant, model_version, status, response)"
        " VALUES (?, ?, ?, ?, ?, 200, ?) ON CONFLICT(request_id) DO UPDATE SET"
        " model_version = excluded.model_version, status = 200, response = excluded.response,"
        " latency_ms = CASE WHEN payloads.request IS NOT NULL"
        " THEN MAX(excluded.ts - payloads.ts, 0) * 1000 END",
        (ev["id"], ev["ts"], ev["model"], ev["variant"], version and str(version), ev["body"]),
    )


def _json(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


def create_app(serve: ServeConfig) -> Starlette:
    """The sink as an ASGI app; the payload log (``serve.payload_db``) opens at startup."""
    state: dict[str, PayloadStore] = {}

    @asynccontextmanager
    async def lifespan(app: Starlette):  # type: ignore[no-untyped-def]
        state["store"] = PayloadStore(serve.payload_db)
        try:
            yield
        finally:
            await asyncio.to_thread(state["store"].close)

    async def receive(request: Request) -> Response:
        try:
            ev = read_event(request.headers, await request.body(), time.time())
        except PlatformError as exc:
            return error_response(exc)
        await asyncio.wrap_future(state["store"].transaction(lambda c: merge_event(c, ev)))
        return json_response(200, {"stored": ev["id"]})

    async def stats(request: Request) -> Response:
        now = time.time()
        try:
            since = float(request.query_params.get("since", 0))
        except ValueError:
            return error_response(RequestError("since must be a unix timestamp"))
        model = request.query_params.get("model")
        rows = await asyncio.to_thread(state["store"].requests, since, now + 1, model)
        return json_response(200, summarize(rows, now, serve.response_grace_seconds))

    async def feedback(request: Request) -> Response:
        try:
            items = parse_feedback(await request.body())
            await asyncio.to_thread(state["store"].add_feedback_many, items)
        except PlatformError as exc:  # malformed (400), unknown request ids (404)
            return error_response(exc)
        return json_response(200, {"accepted": len(items)})

    async def healthz(request: Request) -> Response:
        return json_response(200, {"ok": True})

    routes = [
        Route("/", receive, methods=["POST"]),
        Route("/stats", stats, methods=["GET"]),
        Route("/v1/feedback", feedback, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    p = argparse.ArgumentParser(description="KServe logger CloudEvents → the payload log.")
    p.add_argument("--config", type=Path, required=True, help="Platform config YAML (serve).")
    p.add_argument("--host", default="0.0.0.0", help="Bind address.")
    p.add_argument("--port", type=int, default=8080, help="Port.")
    args = p.parse_args(argv)
    app = create_app(load_platform_config(args.config).serve)
    uvicorn.run(app, host=args.host, port=args.port, access_log=False)


if __name__ == "__main__":
    main()
