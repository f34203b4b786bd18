"""The payload sink on the cluster: KServe's inference logger posts CloudEvents here and they
land in the same ``payloads``/``feedback`` schema as the local router writes.

    python -m mlplatform.serving sink --config /etc/mlplatform/house-price.yaml --port 8080

It writes the payload log at ``serve.payload_store`` of the config (the chart sets it with
``MLPLATFORM__SERVE__PAYLOAD_STORE``, as for the monitor jobs). Events that arrive together
are written together: the store's writer commits them as one transaction (on PostgreSQL a
request whose two events are both in it is written as one row, the rest one statement per kind
of half; :func:`~mlplatform.serving.payloads.blocks.merge_in_blocks`).

KServe sends one event per request (``ce-type: org.kubeflow.serving.inference.request``) and
one per successful response (``...inference.response``, only for HTTP 200), in binary mode:
attributes in ``ce-*`` headers, the body as it was. Both carry the same ``ce-id`` (the
request id) and are merged into one row, in whatever order they arrive;
``ce-inferenceservicename`` gives the model and ``ce-endpoint`` the variant: the ``endpoint``
label of the predictor revision that served it, ``v<version>`` as the chart sets it (KServe
itself reports ``default`` for every revision), stored as it came. Events whose ``metadata``
attribute carries the explainer's header
(:data:`~mlplatform.serving.payloads.EXPLAINER_HEADER`) are the explainer's neighbourhood
batches, not user traffic: they are acknowledged and not stored.

``GET /stats?model=<isvc>&since=<unix ts>&canary=<endpoint>`` returns the per-variant figures
the rollout controller reads (:class:`~mlplatform.serving.traffic.KServeBackend`): requests
logged with that endpoint are the canary, all others stable (without ``canary``, one section
per endpoint as stored). A request without a response ``serve.response_grace_seconds`` after
it arrived counts as an error, unless its body is a client's mistake the predictor refused
with a 4xx (:mod:`.request_check`, with the model's config beside the sink's): errors are 5xx
and timeouts, as on the router. ``POST /v1/feedback`` attaches ground truth with the same rules
as on the router: the feedback token (``MLPLATFORM_FEEDBACK_TOKEN``, from a Secret; without it
feedback is closed), labels of the config's task, logged request ids only, first label wins
(:mod:`mlplatform.serving.payloads.feedback`).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mlplatform.config import ServeConfig, load_config
from mlplatform.errors import EventError, PlatformError, RequestError
from mlplatform.serving.body_limit import BodyLimit
from mlplatform.serving.metrics import summarize
from mlplatform.serving.payloads import (
    EXPLAINER_HEADER,
    EXPLAINER_TRAFFIC,
    Half,
    PayloadStore,
    decode_instances,
)
from mlplatform.serving.process import load_platform_config
from mlplatform.serving.request_check import RequestCheck
from mlplatform.serving.router import error_response, json_response, parse_feedback
from mlplatform.serving.tokens import FEEDBACK_TOKEN_ENV, check_bearer, env_token

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
        "explainer": explainer_traffic(attrs.get("metadata")),
        "kind": "request" if attrs["type"] == REQUEST else "response",
        "ts": event_time(attrs.get("time"), now),
        "model": attrs.get("inferenceservicename") or attrs.get("source", ""),
        "variant": VARIANTS.get(attrs.get("endpoint", "default"), attrs.get("endpoint")),
        "body": body.decode(errors="replace"),
    }


def explainer_traffic(metadata: str | None) -> bool:
    """Whether an event's ``metadata`` attribute (the agent's JSON of the forwarded headers,
    ``{"<Header>": ["<value>", ...]}``) marks the explainer's own calls."""
    if not metadata:  # most events: no forwarded headers (and no JSON error to raise)
        return False
    doc = _json(metadata)
    values = doc.get(EXPLAINER_HEADER) if isinstance(doc, dict) else None
    return isinstance(values, list) and EXPLAINER_TRAFFIC in values


def by_canary(rows: pd.DataFrame, canary: str | None) -> pd.DataFrame:
    """``rows`` with ``variant`` as the rollout sees it: ``canary`` for the canary
    revision's endpoint, ``stable`` for every other; unchanged without ``canary``."""
    if canary is None:
        return rows
    return rows.assign(variant=np.where(rows["variant"] == canary, "canary", "stable"))


def event_row(ev: dict[str, Any]) -> tuple[Half, dict[str, Any]]:
    """The columns one event sets in its request's row (merged by
    :meth:`PayloadStore.merge_async`, whichever half arrives first)."""
    doc = _json(ev["body"])
    row = {"request_id": ev["id"], "ts": ev["ts"], "model": ev["model"], "variant": ev["variant"]}
    if ev["kind"] == "request":
        instances = decode_instances(ev["body"])
        endpoint = "infer" if isinstance(doc, dict) and "inputs" in doc else "predict"
        n = None if instances is None else len(instances)
        return "request", {**row, "endpoint": endpoint, "n_instances": n, "request": ev["body"]}
    version = doc.get("model_version") if isinstance(doc, dict) else None
    return "response", {
        **row,
        "model_version": version and str(version),
        "status": 200,
        "response": ev["body"],
    }


def _json(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


def create_app(
    serve: ServeConfig,
    *,
    task: str,
    feedback_token: str | None,
    checks: Callable[[str], RequestCheck | None] = lambda model: None,
) -> Starlette:
    """The sink as an ASGI app; the payload log (``serve.payload_store``) opens at startup.
    Feedback labels are checked against ``task`` and need ``feedback_token`` (None: closed).
    ``checks(model)`` tells a client's mistake from a server error in a request without a
    response (:mod:`.request_check`; None: every such request is an error)."""
    state: dict[str, PayloadStore] = {}

    @asynccontextmanager
    async def lifespan(app: Starlette):  # type: ignore[no-untyped-def]
        state["store"] = await asyncio.to_thread(PayloadStore, serve.payload_store)
        try:
            yield
        finally:
            await asyncio.to_thread(state["store"].close)

    async def receive(request: Request) -> Response:
        try:
            ev = read_event(request.headers, await request.body(), time.time())
        except PlatformError as exc:
            return error_response(exc)
        if ev["explainer"]:
            return json_response(200, {"skipped": ev["id"], "reason": "explainer traffic"})
        await asyncio.wrap_future(state["store"].merge_async(*event_row(ev)))
        return json_response(200, {"stored": ev["id"]})

    async def stats(request: Request) -> Response:
        now = time.time()
        try:
            since = float(request.query_params.get("since", 0))
        except ValueError:
            return error_response(RequestError("since must be a unix timestamp"))
        model, canary = request.query_params.get("model"), request.query_params.get("canary")
        rows = await asyncio.to_thread(state["store"].requests, since, now + 1, model)
        check = await asyncio.to_thread(checks, model) if model else None
        grace = serve.response_grace_seconds
        figures = summarize(by_canary(rows, canary), now, grace, check)
        return json_response(200, figures)

    async def feedback(request: Request) -> Response:
        try:
            auth = request.headers.get("authorization")
            check_bearer(auth, feedback_token, "feedback", FEEDBACK_TOKEN_ENV)
            items = parse_feedback(await request.body(), task)
            stored = await asyncio.to_thread(state["store"].accept_feedback, items)
        except PlatformError as exc:  # token (401), label (400), unknown id (404), conflict (409)
            return error_response(exc)
        return json_response(200, {"accepted": len(items), "stored": len(stored)})

    async def healthz(request: Request) -> Response:
        return json_response(200, {"ok": True})

    routes = [
        Route("/", receive, methods=["POST"]),
        Route("/stats", stats, methods=["GET"]),
        Route("/v1/feedback", feedback, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
    limit = Middleware(BodyLimit, max_bytes=serve.max_body_bytes)  # 413 above
    return Starlette(routes=routes, lifespan=lifespan, middleware=[limit])


def config_checks(folder: Path) -> Callable[[str], RequestCheck | None]:
    """Each model's :class:`RequestCheck` from its config beside the sink's own
    (``<folder>/<model>.yaml``, as the chart mounts them all); None for a model without one."""

    @lru_cache(maxsize=64)
    def check(model: str) -> RequestCheck | None:
        path = folder / f"{model}.yaml"
        if not path.is_file():
            return None
        cfg = load_config(path)
        names, numeric = tuple(cfg.feature_names), tuple(cfg.numeric_features)
        return RequestCheck(names, numeric, cfg.entity, cfg.serve.max_instances)

    return check


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    p = argparse.ArgumentParser(description="KServe logger CloudEvents → the payload log.")
    p.add_argument("--config", type=Path, required=True, help="Platform config YAML (serve).")
    p.add_argument("--host", default="0.0.0.0", help="Bind address.")
    p.add_argument("--port", type=int, default=8080, help="Port.")
    args = p.parse_args(argv)
    cfg = load_platform_config(args.config)
    token = env_token(FEEDBACK_TOKEN_ENV)
    app = create_app(
        cfg.serve, task=cfg.task, feedback_token=token, checks=config_checks(args.config.parent)
    )
    uvicorn.run(app, host=args.host, port=args.port, access_log=False)


if __name__ == "__main__":
    main()
