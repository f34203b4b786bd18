"""The router's state and behaviour: routing, forwarding, retries, statistics, admin."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import Response

from mlplatform.config import PlatformConfig
from mlplatform.errors import (
    BodyTooLargeError,
    ExplainerNotConfiguredError,
    PayloadLogError,
    PlatformError,
    RequestError,
    RouterNotStartedError,
    TrafficError,
    UnknownModelError,
    UpstreamError,
)
from mlplatform.serving.metrics import (
    PrometheusMetrics,
    RecentPredictions,
    VariantMetrics,
    abs_errors,
)
from mlplatform.serving.payloads import PayloadStore, decode_predictions
from mlplatform.serving.router.messages import (
    FORWARDED_HEADERS,
    INFERENCE_HEADER,
    VARIANT_HEADER,
    Call,
    Reply,
    _reason,
    _version,
    count_instances,
    error_reply,
    error_response,
    json_response,
    parse_feedback,
)
from mlplatform.serving.router.settings import RouterSettings, same_url
from mlplatform.serving.tokens import ADMIN_TOKEN_ENV, FEEDBACK_TOKEN_ENV, check_bearer
from mlplatform.serving.traffic import Routing, Upstream, drain


class CanaryRouter:
    """State and behaviour of the router; :func:`create_app` maps the HTTP routes onto it.

    ``cfg`` gives the model name and every setting (its ``serve`` section); ``settings`` the
    upstreams this process starts with.
    """

    def __init__(
        self, cfg: PlatformConfig, settings: RouterSettings, rng: random.Random | None = None
    ) -> None:
        self.model_name, self.serve, self.settings = cfg.model_name, cfg.serve, settings
        self.task = cfg.task
        self.rng = rng or random.Random()
        stable = Upstream(settings.stable_url, settings.stable_version)
        self.routing = Routing(stable)
        if settings.canary_url:
            self.routing = self.routing.attached(
                settings.canary_url, settings.canary_version, self.serve.canary_percent
            )
        self.prometheus = PrometheusMetrics()
        self.recent = RecentPredictions(max_bytes=self.serve.recent_predictions_max_bytes)
        self.generation = 0
        self.variants = self._fresh_metrics()
        self._store: PayloadStore | None = None
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self._store = await asyncio.to_thread(PayloadStore, self.serve.payload_store)
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
        self._client = httpx.AsyncClient(timeout=self.serve.upstream_timeout_seconds, limits=limits)

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.aclose()
        if self._store is not None:
            await asyncio.to_thread(self._store.close)

    @property
    def store(self) -> PayloadStore:
        if self._store is None:
            raise RouterNotStartedError("router is not started")
        return self._store

    def _fresh_metrics(self) -> dict[str, VariantMetrics]:
        return {v: VariantMetrics(self.serve.reservoir_size) for v in ("stable", "canary")}

    def _switch(self, routing: Routing) -> None:
        """New topology in one assignment; statistics restart for both variants."""
        self.routing = routing
        self.generation += 1
        self.variants = self._fresh_metrics()

    # -- inference -----------------------------------------------------------------------
    async def infer(self, request: Request, endpoint: str) -> Response:
        call = Call(request, endpoint)
        try:
            call.body = await self._read_body(request)
            self._check_model(request.path_params["name"])
            call.n = count_instances(call.json_part(), endpoint, self.serve.max_instances)
            pin = self._pin(request)
            if endpoint == "explain":
                return await self._explain(call)
        except PlatformError as exc:
            return await self._respond(call, None, None, error_reply(exc))
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
        return self.serve.retry_canary_on_stable and self.routing.stable is not failed

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
            return error_reply(UpstreamError(reason), time.perf_counter() - t0)
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
            raise ExplainerNotConfiguredError(
                "no explainer is configured for this router (--explainer-url)"
            )
        reply = await self._forward(Upstream(self.settings.explainer_url), call)
        return await self._respond(call, "explainer", _version(reply), reply)

    async def _respond(
        self, call: Call, variant: str | None, version: str | None, reply: Reply
    ) -> Response:
        """Log the request durably, then answer with the router's headers."""
        headers = {"x-request-id": call.rid, "x-model-version": version or "unknown"}
        if binary := reply.headers.get(INFERENCE_HEADER):  # OIP binary tensor extension
            headers[INFERENCE_HEADER] = binary
        if variant is not None:
            headers[VARIANT_HEADER] = variant
        written = self.store.log_async(call.record(variant, version, reply))
        try:
            await asyncio.shield(asyncio.wrap_future(written))  # logged even if the client left
        except PlatformError as exc:  # a repeated id (409); disk full, store down (503, counted)
            self.prometheus.payload_log_failures.inc(int(isinstance(exc, PayloadLogError)))
            return error_response(exc, headers)
        media = reply.headers.get("content-type", "application/json")
        return Response(reply.content, reply.status, headers, media_type=media)

    # -- checks on the request -----------------------------------------------------------
    async def _read_body(self, request: Request) -> bytes:
        limit = self.serve.max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            reason = f"body of {declared} bytes exceeds serve.max_body_bytes={limit}"
            raise BodyTooLargeError(reason)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BodyTooLargeError(f"body exceeds serve.max_body_bytes={limit}")
            chunks.append(chunk)
        return b"".join(chunks)

    def _check_model(self, name: str) -> None:
        if name != self.model_name:
            served = self.model_name
            raise UnknownModelError(f"unknown model {name!r}; this router serves {served!r}")

    def check_admin(self, request: Request, what: str = "the admin API") -> None:
        """The request carries the admin token (401 otherwise)."""
        auth = request.headers.get("authorization")
        check_bearer(auth, self.settings.admin_token, what, ADMIN_TOKEN_ENV)

    def _pin(self, request: Request) -> str | None:
        """The variant the request pins, only with the admin token (else 401): a client
        pinned to the canary would choose what the rollout measures."""
        pin = request.headers.get(VARIANT_HEADER)
        if pin is not None:
            self.check_admin(request, f"pinning a variant ({VARIANT_HEADER})")
        if pin is not None and pin not in ("stable", "canary"):
            raise RequestError(f"{VARIANT_HEADER} must be 'stable' or 'canary', got {pin!r}")
        if pin == "canary" and self.routing.canary is None:
            raise TrafficError("no canary is attached; cannot pin 'canary'")
        return pin

    # -- feedback, metadata --------------------------------------------------------------
    async def feedback(self, request: Request) -> Response:
        """Ground truth: token (401), labels of the task (400), ids this router logged (404),
        first label wins (409 for another one, audited); see :mod:`.payloads.feedback`."""
        auth = request.headers.get("authorization")
        check_bearer(auth, self.settings.feedback_token, "feedback", FEEDBACK_TOKEN_ENV)
        items = parse_feedback(await request.body(), self.task)
        stored = await asyncio.to_thread(self.store.accept_feedback, items)
        for rid, label in stored:
            seen = self.recent.get(rid)
            if seen is not None and seen[1] == self.generation:
                self.variants[seen[0]].observe_labels(abs_errors(seen[2], label))
        return json_response(200, {"accepted": len(items), "stored": len(stored)})

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
            "model": self.model_name,
            "canary_percent": r.canary_percent,
            "generation": self.generation,
        }
        for variant, up in sections.items():
            doc[variant] = up and {**up.describe(), **self.variants[variant].to_json()}
        return doc

    def attach(self, url: str, version: str | None, percent: int) -> None:
        """Attach the canary at ``url``: only a predictor this router was started with or told
        of (``--upstream``), so the admin API cannot send traffic elsewhere (400)."""
        known = self.settings.known_upstreams()
        if same_url(url) not in known:
            raise RequestError(f"{url!r} is not a known upstream of this router: {sorted(known)}")
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
        return await drain(retired, self.serve.drain_seconds)
