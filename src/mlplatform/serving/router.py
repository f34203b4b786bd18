"""The canary router: one endpoint for clients in front of the stable (champion) and canary
(challenger) predictors, with a traffic split, per-variant statistics and the payload log.

    python -m mlplatform.serving.router --config configs/house-price.yaml \\
        --stable-url http://127.0.0.1:8081 --canary-url http://127.0.0.1:8082 --port 8080

Routing. A request goes to the canary with probability ``canary_percent``/100 unless the
header ``x-mlplatform-variant: stable|canary`` pins it. Admin calls replace the immutable
:class:`~mlplatform.serving.traffic.Routing` in one assignment; a request keeps the one it
started with, and promote/rollback return once the retired variant has no request in
flight, so switching never fails a client request.

Failures. A canary request that fails (5xx or unreachable) counts against the canary (its
statistics, ``errors_total``) and, unless the client pinned the canary, is retried once on
the stable variant: clients do not see a broken canary, the rollout controller does. Its
payload row records ``variant=stable`` and the canary's failure in ``error``. Upstream 4xx
are passed through and are not variant errors; an unreachable upstream gives 503.

Every inference request, including those the router rejects (400/404/409/413, ``variant``
NULL), is in the payload log before its response is sent.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mlplatform.config import PlatformConfig
from mlplatform.errors import PlatformError
from mlplatform.serving.metrics import (
    PrometheusMetrics,
    RecentPredictions,
    VariantMetrics,
    abs_errors,
)
from mlplatform.serving.payloads import (
    DuplicateRequestError,
    PayloadRecord,
    PayloadStore,
    UnknownRequestError,
    decode_predictions,
)
from mlplatform.serving.traffic import Routing, TrafficError, Upstream, drain

VARIANT_HEADER = "x-mlplatform-variant"
FORWARDED_HEADERS = ("content-type", "accept", "traceparent")


class RouterError(PlatformError):
    """A request the router answers itself: HTTP ``status`` with the reason."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        super().__init__(reason)


@dataclass(frozen=True)
class RouterSettings:
    """Everything the router needs; :meth:`from_config` takes the defaults from ``serve``."""

    model_name: str
    stable_url: str
    payload_db: Path
    canary_url: str | None = None
    explainer_url: str | None = None
    stable_version: str | None = None
    canary_version: str | None = None
    canary_percent: int = 0
    max_body_bytes: int = 8_000_000
    max_instances: int = 10_000
    timeout_seconds: float = 30.0
    retry_canary_on_stable: bool = True
    reservoir_size: int = 2000
    drain_seconds: float = 30.0

    @classmethod
    def from_config(cls, cfg: PlatformConfig, stable_url: str, **overrides: Any) -> RouterSettings:
        s = cfg.serve
        base = cls(cfg.model_name, stable_url, s.payload_db, canary_percent=s.canary_percent)
        base = replace(base, max_body_bytes=s.max_body_bytes, max_instances=s.max_instances)
        return replace(base, **overrides)


@dataclass
class Call:
    """One inference request on its way through the router."""

    request: Request
    endpoint: str  # predict | infer | explain
    rid: str = field(default_factory=lambda: str(uuid.uuid4()))
    start: float = field(default_factory=time.time)
    body: bytes = b""
    n: int | None = None

    def record(self, variant: str | None, version: str | None, reply: Reply) -> PayloadRecord:
        name = self.request.path_params["name"]
        latency = reply.seconds * 1000 if reply.seconds else None
        request = self.body.decode(errors="replace") or None
        response = reply.content.decode(errors="replace")
        return PayloadRecord(
            self.rid,
            self.start,
            name,
            variant,
            version,
            self.endpoint,
            reply.status,
            latency,
            self.n,
            request,
            response,
            reply.note,
        )


@dataclass
class Reply:
    """An upstream's answer, or the router's own (``seconds`` 0)."""

    status: int
    content: bytes
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    note: str | None = None  # error reason / retry note kept in the payload log

    @property
    def failed(self) -> bool:
        return self.status >= 500

    @classmethod
    def error(cls, status: int, reason: str, seconds: float = 0.0) -> Reply:
        return cls(status, orjson.dumps({"error": reason}), {}, seconds, reason)


def json_response(status: int, doc: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(doc), status, headers, media_type="application/json")


class CanaryRouter:
    """State and behaviour of the router; :func:`create_app` maps the HTTP routes onto it."""

    def __init__(self, settings: RouterSettings, rng: random.Random | None = None) -> None:
        self.settings = settings
        self.rng = rng or random.Random()
        stable = Upstream(settings.stable_url, settings.stable_version)
        self.routing = Routing(stable)
        if settings.canary_url:
            self.routing = self.routing.attached(
                settings.canary_url, settings.canary_version, settings.canary_percent
            )
        self.prometheus = PrometheusMetrics()
        self.recent = RecentPredictions()
        self.generation = 0
        self.variants = self._fresh_metrics()
        self._store: PayloadStore | None = None
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self._store = PayloadStore(self.settings.payload_db)
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
        self._client = httpx.AsyncClient(timeout=self.settings.timeout_seconds, limits=limits)

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.aclose()
        if self._store is not None:
            await asyncio.to_thread(self._store.close)

    @property
    def store(self) -> PayloadStore:
        if self._store is None:
            raise RouterError(503, "router is not started")
        return self._store

    def _fresh_metrics(self) -> dict[str, VariantMetrics]:
        return {v: VariantMetrics(self.settings.reservoir_size) for v in ("stable", "canary")}

    def _switch(self, routing: Routing) -> None:
        """New topology in one assignment; statistics restart for both variants."""
        self.routing = routing
        self.generation += 1
        self.variants = self._fresh_metrics()

    # -- inference -----------------------------------------------------------------------
    async def infer(self, request: Request, endpoint: str) -> Response:
        call = Call(request, endpoint)
        try:
            call.rid = _request_id(request) or call.rid
            call.body = await self._read_body(request)
            call.n = self._check_payload(request.path_params["name"], call.body, endpoint)
            pin = self._pin(request)
            if endpoint == "explain":
                return await self._explain(call)
        except RouterError as exc:
            return await self._respond(call, None, None, Reply.error(exc.status, str(exc)))
        return await self._route(call, pin)

    async def _route(self, call: Call, pin: str | None) -> Response:
        routing, generation = self.routing, self.generation
        variant = pin or routing.draw(self.rng)
        upstream = routing.upstream(variant)
        reply = await self._forward(upstream, call)
        self._observe(variant, reply, generation, call.rid)
        if variant == "canary" and pin is None and reply.failed and self._may_retry(upstream):
            failure = f"canary failed with HTTP {reply.status}: {_reason(reply)}"
            upstream, variant = self.routing.stable, "stable"
            reply = await self._forward(upstream, call)
            self._observe(variant, reply, generation, call.rid)
            reply.note = "; ".join(filter(None, [failure, "served by stable", reply.note]))
        if upstream.version is None and reply.status == 200:
            upstream.version = _version(reply)  # learnt from the predictor's answer
        return await self._respond(call, variant, upstream.version or _version(reply), reply)

    def _may_retry(self, failed: Upstream) -> bool:
        return self.settings.retry_canary_on_stable and self.routing.stable is not failed

    async def _forward(self, up: Upstream, call: Call) -> Reply:
        assert self._client is not None
        req = call.request
        headers = {k: v for k in FORWARDED_HEADERS if (v := req.headers.get(k))}
        headers["x-request-id"] = call.rid
        up.inflight += 1
        t0 = time.perf_counter()
        try:
            resp = await self._client.request(
                req.method, up.url.rstrip("/") + req.url.path, content=call.body, headers=headers
            )
        except httpx.HTTPError as exc:
            reason = f"upstream {up.url} unavailable: {type(exc).__name__}: {exc}"
            return Reply.error(503, reason, time.perf_counter() - t0)
        finally:
            up.inflight -= 1
        reply = Reply(resp.status_code, resp.content, dict(resp.headers), time.perf_counter() - t0)
        reply.note = _reason(reply) if reply.status >= 400 else None
        return reply

    def _observe(self, variant: str, reply: Reply, generation: int, rid: str) -> None:
        """Count one upstream answer (statistics only while the topology is unchanged)."""
        self.prometheus.observe(variant, reply.status, reply.seconds, reply.failed)
        if generation != self.generation:
            return
        ok = reply.status == 200
        preds = decode_predictions(reply.content.decode(errors="replace")) if ok else None
        self.variants[variant].observe(reply.seconds * 1000, reply.failed, preds or [])
        if preds:
            self.recent.add(rid, variant, generation, preds)

    async def _explain(self, call: Call) -> Response:
        if self.settings.explainer_url is None:
            raise RouterError(404, "no explainer is configured for this router (--explainer-url)")
        reply = await self._forward(Upstream(self.settings.explainer_url), call)
        return await self._respond(call, "explainer", _version(reply), reply)

    async def _respond(
        self, call: Call, variant: str | None, version: str | None, reply: Reply
    ) -> Response:
        """Log the request durably, then answer with the router's headers."""
        headers = {"x-request-id": call.rid, "x-model-version": version or "unknown"}
        if variant is not None:
            headers[VARIANT_HEADER] = variant
        written = self.store.log_async(call.record(variant, version, reply))
        try:
            await asyncio.shield(asyncio.wrap_future(written))  # logged even if the client left
        except DuplicateRequestError as exc:
            return json_response(409, {"error": str(exc)}, headers)
        except PlatformError as exc:
            return json_response(500, {"error": f"payload log write failed: {exc}"}, headers)
        media = reply.headers.get("content-type", "application/json")
        return Response(reply.content, reply.status, headers, media_type=media)

    # -- checks on the request -----------------------------------------------------------
    async def _read_body(self, request: Request) -> bytes:
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise RouterError(413, f"body of {declared} bytes exceeds serve.max_body_bytes={limit}")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RouterError(413, f"body exceeds serve.max_body_bytes={limit}")
            chunks.append(chunk)
        return b"".join(chunks)

    def _check_model(self, name: str) -> None:
        if name != self.settings.model_name:
            served = self.settings.model_name
            raise RouterError(404, f"unknown model {name!r}; this router serves {served!r}")

    def _check_payload(self, name: str, body: bytes, endpoint: str) -> int:
        """Model name, JSON shape and instance count; returns the number of instances."""
        self._check_model(name)
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise RouterError(400, f"malformed JSON: {exc}") from None
        key = "inputs" if endpoint == "infer" else "instances"
        if not isinstance(doc, dict) or not isinstance(doc.get(key), list):
            raise RouterError(400, f'expected a JSON object with an "{key}" list')
        n = _count(doc[key], endpoint)
        if n > self.settings.max_instances:
            limit = self.settings.max_instances
            raise RouterError(413, f"{n} instances exceed serve.max_instances={limit}")
        return n

    def _pin(self, request: Request) -> str | None:
        pin = request.headers.get(VARIANT_HEADER)
        if pin is not None and pin not in ("stable", "canary"):
            raise RouterError(400, f"{VARIANT_HEADER} must be 'stable' or 'canary', got {pin!r}")
        if pin == "canary" and self.routing.canary is None:
            raise RouterError(409, "no canary is attached; cannot pin 'canary'")
        return pin

    # -- feedback, metadata --------------------------------------------------------------
    async def feedback(self, request: Request) -> Response:
        items = parse_feedback(await request.body())
        try:
            await asyncio.to_thread(self.store.add_feedback_many, items)
        except UnknownRequestError as exc:
            return json_response(404, {"error": str(exc), "unknown": exc.missing})
        for rid, label in items:
            seen = self.recent.get(rid)
            if seen is not None and seen[1] == self.generation:
                self.variants[seen[0]].observe_labels(abs_errors(seen[2], label))
        return json_response(200, {"accepted": len(items)})

    async def metadata(self, request: Request) -> Response:
        """Model metadata/readiness GETs, answered by the stable variant (or the pinned one)."""
        if "name" in request.path_params:
            self._check_model(request.path_params["name"])
        variant = self._pin(request) or "stable"
        reply = await self._forward(self.routing.upstream(variant), Call(request, "metadata"))
        media = reply.headers.get("content-type", "application/json")
        return Response(reply.content, reply.status, {VARIANT_HEADER: variant}, media_type=media)

    # -- admin ---------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        r = self.routing
        sections = {"stable": r.stable, "canary": r.canary}
        doc: dict[str, Any] = {
            "model": self.settings.model_name,
            "canary_percent": r.canary_percent,
            "generation": self.generation,
        }
        for variant, up in sections.items():
            doc[variant] = up and {**up.describe(), **self.variants[variant].to_json()}
        return doc

    def attach(self, url: str, version: str | None, percent: int) -> None:
        self._switch(self.routing.attached(url, version, percent))

    async def promote(self) -> dict[str, Any]:
        routing, retired = self.routing.promoted()
        self._switch(routing)
        return {"stable": routing.stable.describe(), "drained": await self._drain(retired)}

    async def rollback(self) -> dict[str, Any]:
        routing, retired = self.routing.rolled_back()
        self._switch(routing)
        return {"stable": routing.stable.describe(), "drained": await self._drain(retired)}

    async def _drain(self, retired: Upstream | None) -> bool:
        return await drain(retired, self.settings.drain_seconds)


def _request_id(request: Request) -> str | None:
    """The client's ``x-request-id`` (at most 200 characters), or None when not sent."""
    rid = request.headers.get("x-request-id") or None
    if rid is not None and len(rid) > 200:
        raise RouterError(400, f"x-request-id has {len(rid)} characters; at most 200")
    return rid


def _count(rows: list[Any], endpoint: str) -> int:
    """Instances of a v1 ``instances`` list, or rows (``shape[0]``) of the first v2 input."""
    if endpoint != "infer":
        return len(rows)
    shape = rows[0].get("shape") if rows and isinstance(rows[0], dict) else None
    if not isinstance(shape, list) or not shape or not isinstance(shape[0], int):
        raise RouterError(400, 'each of "inputs" needs "name", "shape", "datatype" and "data"')
    return shape[0]


def parse_feedback(body: bytes) -> list[tuple[str, Any]]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RouterError(400, f"malformed JSON: {exc}") from None
    docs = doc if isinstance(doc, list) else [doc]
    ok = all(
        isinstance(d, dict) and isinstance(d.get("request_id"), str) and "label" in d for d in docs
    )
    if not docs or not ok:
        raise RouterError(
            400, 'feedback is {"request_id": "...", "label": value} or a list of them'
        )
    return [(d["request_id"], d["label"]) for d in docs]


def _version(reply: Reply) -> str | None:
    """The model version an upstream reports (``x-model-version`` header or body field)."""
    if v := reply.headers.get("x-model-version"):
        return v
    doc = _json(reply.content)
    v = doc.get("model_version") if isinstance(doc, dict) else None
    return str(v) if v not in (None, "") else None


def _reason(reply: Reply) -> str:
    doc = _json(reply.content)
    if isinstance(doc, dict) and "error" in doc:
        return str(doc["error"])
    return reply.content[:300].decode(errors="replace")


def _json(content: bytes) -> Any:
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return None


# -- the ASGI app ---------------------------------------------------------------------------
Handler = Callable[[Request], Awaitable[Response]]


def _guard(fn: Handler) -> Handler:
    """Turn RouterError/TrafficError into their JSON error responses."""

    async def handle(request: Request) -> Response:
        try:
            return await fn(request)
        except RouterError as exc:
            return json_response(exc.status, {"error": str(exc)})
        except TrafficError as exc:
            return json_response(409, {"error": str(exc)})

    return handle


async def _admin_body(request: Request) -> dict[str, Any]:
    doc = _json(await request.body() or b"{}")
    if not isinstance(doc, dict):
        raise RouterError(400, "expected a JSON object")
    return doc


def _admin_routes(router: CanaryRouter) -> list[Route]:
    async def stats(request: Request) -> Response:
        return json_response(200, router.stats())

    async def metrics(request: Request) -> Response:
        return Response(router.prometheus.exposition(), media_type="text/plain; version=0.0.4")

    async def traffic(request: Request) -> Response:
        percent = (await _admin_body(request)).get("canary_percent")
        if not isinstance(percent, int) or isinstance(percent, bool) or not 0 <= percent <= 100:
            raise RouterError(400, f"canary_percent must be an integer in 0..100, got {percent!r}")
        router.routing = router.routing.with_percent(percent)
        return json_response(200, {"canary_percent": percent})

    async def canary(request: Request) -> Response:
        doc = await _admin_body(request)
        url, version, percent = doc.get("url"), doc.get("version"), doc.get("canary_percent", 0)
        if not isinstance(url, str) or not isinstance(percent, int):
            raise RouterError(400, 'expected {"url": "http://host:port", "version": "3"}')
        router.attach(url, None if version is None else str(version), percent)
        return json_response(200, {"canary": {"url": url, "version": version}})

    async def promote(request: Request) -> Response:
        return json_response(200, await router.promote())

    async def rollback(request: Request) -> Response:
        return json_response(200, await router.rollback())

    async def live(request: Request) -> Response:
        return json_response(200, {"live": True})

    async def healthz(request: Request) -> Response:
        """The router itself is up (``/v2/health/ready`` asks the stable predictor)."""
        r = router.routing
        canary = r.canary.url if r.canary else None
        return json_response(200, {"ok": True, "stable": r.stable.url, "canary": canary})

    return [
        Route("/v1/feedback", _guard(router.feedback), methods=["POST"]),
        Route("/admin/stats", stats, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/admin/traffic", _guard(traffic), methods=["PUT"]),
        Route("/admin/canary", _guard(canary), methods=["PUT"]),
        Route("/admin/promote", _guard(promote), methods=["POST"]),
        Route("/admin/rollback", _guard(rollback), methods=["POST"]),
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]


def create_app(settings: RouterSettings, rng: random.Random | None = None) -> Starlette:
    """The router as an ASGI app; the payload log and HTTP client open at startup."""
    router = CanaryRouter(settings, rng)

    @asynccontextmanager
    async def lifespan(app: Starlette):  # type: ignore[no-untyped-def]
        await router.start()
        try:
            yield
        finally:
            await router.stop()

    def inference(endpoint: str) -> Handler:
        async def handle(request: Request) -> Response:
            return await router.infer(request, endpoint)

        return handle

    metadata = _guard(router.metadata)
    routes = [
        Route("/v1/models/{name}:predict", inference("predict"), methods=["POST"]),
        Route("/v1/models/{name}:explain", inference("explain"), methods=["POST"]),
        Route("/v2/models/{name}/infer", inference("infer"), methods=["POST"]),
        *_admin_routes(router),
        Route("/v1/models/{name}", metadata, methods=["GET"]),
        Route("/v2/models/{name}", metadata, methods=["GET"]),
        Route("/v2/models/{name}/ready", metadata, methods=["GET"]),
        Route("/v2/health/ready", metadata, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.router = router
    return app


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    from mlplatform.config import load_config

    p = argparse.ArgumentParser(description="The canary router (see the module docstring).")
    p.add_argument("--config", type=Path, required=True, help="Platform config YAML.")
    p.add_argument("--stable-url", required=True, help="Champion predictor, http://host:port.")
    p.add_argument("--canary-url", help="Challenger predictor, http://host:port.")
    p.add_argument("--explainer-url", help="Explainer, http://host:port.")
    p.add_argument("--stable-version", help="Registry version served by stable.")
    p.add_argument("--canary-version", help="Registry version served by the canary.")
    p.add_argument(
        "--canary-percent", type=int, help="Initial canary share (serve.canary_percent)."
    )
    p.add_argument("--payload-db", type=Path, help="SQLite payload log (serve.payload_db).")
    p.add_argument("--host", help="Bind address (serve.host).")
    p.add_argument("--port", type=int, help="Port (serve.router_port).")
    args = p.parse_args(argv)
    try:
        cfg = load_config(args.config)
    except PlatformError as exc:
        raise SystemExit(f"error: {exc}") from None
    names = (
        "canary_url",
        "explainer_url",
        "stable_version",
        "canary_version",
        "canary_percent",
        "payload_db",
    )
    given = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    app = create_app(RouterSettings.from_config(cfg, args.stable_url, **given))
    host, port = args.host or cfg.serve.host, args.port or cfg.serve.router_port
    uvicorn.run(app, host=host, port=port, access_log=False)  # the payload log has every request


if __name__ == "__main__":
    main()
