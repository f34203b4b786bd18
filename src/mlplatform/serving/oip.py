"""Open Inference Protocol requests as the common clients send them, on KServe's app.

tritonclient's JSON mode (and ``curl -d``) posts a v2 ``/infer`` body without
``Content-Type: application/json``. KServe's endpoint then receives the body as bytes and,
without the binary extension's ``inference-header-content-length``, refuses it: 400
"received byte inputs, but the 'inference-header-content-length' header is missing"
(``kserve/protocol/dataplane.py``, ``decode_inference_request``, kserve 0.20). Triton
accepts such a request as JSON. :class:`JsonInfer` says so to KServe: a POST to
``.../infer`` with neither that header nor a JSON content type is marked
``application/json`` before KServe sees it. A binary request (with the header) and every
other route pass unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

INFERENCE_HEADER = b"inference-header-content-length"
Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]


class JsonInfer:
    """ASGI middleware: a v2 infer request without a content type of its own is JSON."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"].endswith("/infer")
        ):
            headers = list(scope.get("headers") or ())
            names = {k.lower(): v for k, v in headers}
            if INFERENCE_HEADER not in names and b"json" not in names.get(b"content-type", b""):
                kept = [(k, v) for k, v in headers if k.lower() != b"content-type"]
                scope = {**scope, "headers": [*kept, (b"content-type", b"application/json")]}
        await self.app(scope, receive, send)


def install(app: Any) -> None:
    """Add :class:`JsonInfer` to KServe's FastAPI ``app`` (before it starts)."""
    app.add_middleware(JsonInfer)
