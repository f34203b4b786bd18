"""Request bodies capped at ``serve.max_body_bytes`` on every server, before the app reads
them: the KServe predictor, transformer and explainer (:func:`install` on KServe's app) and
the payload sink, as the router already does.

:class:`BodyLimit` is ASGI middleware. A declared ``Content-Length`` over the limit is
answered 413 ``{"error": reason}`` at once, without reading the body; a streamed body
(chunked, or longer than it declared) raises :class:`~mlplatform.errors.BodyTooLargeError`
from ``receive`` as soon as it passes the limit, which the app's platform-error handler
answers with the same 413. Nothing past the limit is buffered.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from mlplatform.errors import BodyTooLargeError

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]


def _reason(limit: int, size: int | None = None) -> str:
    got = f"body of {size} bytes" if size is not None else "body"
    return f"{got} exceeds serve.max_body_bytes={limit}"


class BodyLimit:
    """Cap the request body of every HTTP request to ``app`` at ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _reject(send, _reason(self.max_bytes, int(declared)))
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLargeError(_reason(self.max_bytes))
            return message

        await self.app(scope, limited, send)


async def _reject(send: Send, reason: str) -> None:
    body = orjson.dumps({"error": reason})
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def install(app: Any, max_bytes: int) -> None:
    """Add :class:`BodyLimit` to a Starlette/FastAPI ``app`` (before it starts)."""
    app.add_middleware(BodyLimit, max_bytes=max_bytes)
