"""The router as two ASGI apps: the client port (inference, metadata, feedback, health) and the
admin port (``/admin/*`` with the admin token, ``/metrics``), bound to loopback by default.

The admin API moves traffic, so it is not on the port clients reach: there ``/admin/*``
answers 404. ``/metrics`` (read-only Prometheus counters, no token, for a scraper) is on the
admin port too. ``PUT /admin/canary`` attaches only a known upstream
(:meth:`CanaryRouter.attach`).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mlplatform.config import PlatformConfig, as_percent
from mlplatform.errors import PlatformError, RequestError
from mlplatform.serving.router.canary import CanaryRouter
from mlplatform.serving.router.messages import _json, error_response, json_response
from mlplatform.serving.router.settings import RouterSettings

Handler = Callable[[Request], Awaitable[Response]]


def _guard(fn: Handler) -> Handler:
    """Answer platform errors with their status and reason (:func:`error_response`)."""

    async def handle(request: Request) -> Response:
        try:
            return await fn(request)
        except PlatformError as exc:
            return error_response(exc)

    return handle


async def _admin_body(request: Request) -> dict[str, Any]:
    doc = _json(await request.body() or b"{}")
    if not isinstance(doc, dict):
        raise RequestError("expected a JSON object")
    return doc


def _authorized(router: CanaryRouter, fn: Handler) -> Handler:
    """``fn`` behind the admin token: 401 with the reason without it."""

    async def handle(request: Request) -> Response:
        router.check_admin(request)
        return await fn(request)

    return _guard(handle)


def _admin_routes(router: CanaryRouter) -> list[Route]:
    async def stats(request: Request) -> Response:
        return json_response(200, router.stats())

    async def metrics(request: Request) -> Response:
        return Response(router.prometheus.exposition(), media_type="text/plain; version=0.0.4")

    async def traffic(request: Request) -> Response:
        try:
            percent = as_percent((await _admin_body(request)).get("canary_percent"))
        except ValueError as exc:
            raise RequestError(str(exc)) from None
        router.routing = router.routing.with_percent(percent)
        return json_response(200, {"canary_percent": percent})

    async def canary(request: Request) -> Response:
        doc = await _admin_body(request)
        url, version, percent = doc.get("url"), doc.get("version"), doc.get("canary_percent", 0)
        if not isinstance(url, str) or not isinstance(percent, int):
            raise RequestError('expected {"url": "http://host:port", "version": "3"}')
        router.attach(url, None if version is None else str(version), percent)
        return json_response(200, {"canary": {"url": url, "version": version}})

    async def promote(request: Request) -> Response:
        return json_response(200, await router.promote())

    async def rollback(request: Request) -> Response:
        return json_response(200, await router.rollback())

    def admin(fn: Handler) -> Handler:
        return _authorized(router, fn)

    return [
        Route("/admin/stats", admin(stats), methods=["GET"]),
        Route("/admin/traffic", admin(traffic), methods=["PUT"]),
        Route("/admin/canary", admin(canary), methods=["PUT"]),
        Route("/admin/promote", admin(promote), methods=["POST"]),
        Route("/admin/rollback", admin(rollback), methods=["POST"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/healthz", _healthz(router), methods=["GET"]),
    ]


def _healthz(router: CanaryRouter) -> Handler:
    async def healthz(request: Request) -> Response:
        """The router itself is up (``/v2/health/ready`` asks the stable predictor)."""
        r = router.routing
        canary = r.canary.url if r.canary else None
        return json_response(200, {"ok": True, "stable": r.stable.url, "canary": canary})

    return healthz


def create_admin_app(router: CanaryRouter) -> Starlette:
    """The admin port of ``router`` (the ``app.state.router`` of :func:`create_app`); it has no
    lifespan of its own: the client app opens and closes the router."""
    return Starlette(routes=_admin_routes(router))


def create_app(
    cfg: PlatformConfig, settings: RouterSettings, rng: random.Random | None = None
) -> Starlette:
    """The router's client port for ``cfg`` (model name, ``serve`` section) with this
    process's upstreams, as an ASGI app; the payload log and HTTP client open at startup. Its
    admin port is :func:`create_admin_app` of ``app.state.router``."""
    router = CanaryRouter(cfg, settings, rng)

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

    async def live(request: Request) -> Response:
        return json_response(200, {"live": True})

    metadata = _guard(router.metadata)
    routes = [
        Route("/v1/models/{name}:predict", inference("predict"), methods=["POST"]),
        Route("/v1/models/{name}:explain", inference("explain"), methods=["POST"]),
        Route("/v2/models/{name}/infer", inference("infer"), methods=["POST"]),
        Route("/v1/feedback", _guard(router.feedback), methods=["POST"]),
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/healthz", _healthz(router), methods=["GET"]),
        Route("/v1/models/{name}", metadata, methods=["GET"]),
        Route("/v2/models/{name}", metadata, methods=["GET"]),
        Route("/v2/models/{name}/ready", metadata, methods=["GET"]),
        Route("/v2/health/ready", metadata, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.router = router
    return app
