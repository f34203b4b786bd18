"""The one place the KServe servers turn errors into HTTP answers.

The predictor, transformer, explainer and :mod:`.inputs` raise platform errors
(:mod:`mlplatform.errors`), never KServe's. :func:`install` registers :func:`handle` on
KServe's FastAPI app the way KServe registers its own error classes
(``RESTServer._add_exception_handlers``: ``app.add_exception_handler(InvalidInput, ...)``),
so every :class:`~mlplatform.errors.PlatformError` is answered with its class's ``status``
and the body KServe's handlers send, ``{"error": reason}``: bad input 400, unknown 404,
conflict 409, too large 413, too many requests in flight 429 (with a ``Retry-After`` header
of the error's ``retry_after`` seconds), a dependency down or a model not loaded 503.
(KServe's own ``ModelServer.register_exception_handler`` sets the asyncio loop's handler; it
does not shape HTTP answers.)

>>> from mlplatform.errors import DataError, ExplainerBusyError, FeatureRepoError
>>> [error_response(e).status_code for e in (DataError("NaN"), FeatureRepoError("down"))]
[400, 503]
>>> error_response(ExplainerBusyError("busy", retry_after=2)).headers["retry-after"]
'2'
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi.responses import JSONResponse
from starlette.requests import Request

from mlplatform.errors import PlatformError, TooManyRequestsError

logger = logging.getLogger("mlplatform.serving")


def error_response(exc: PlatformError) -> JSONResponse:
    """``{"error": reason}`` with the status the error's class states (and ``Retry-After``
    for a 429)."""
    headers = None
    if isinstance(exc, TooManyRequestsError):
        headers = {"Retry-After": str(exc.retry_after)}
    return JSONResponse(status_code=exc.status, content={"error": str(exc)}, headers=headers)


async def handle(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI exception handler: log (a traceback only for 5xx), then answer."""
    assert isinstance(exc, PlatformError)  # registered for PlatformError only
    if exc.status >= 500:
        logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    else:
        logger.info("%s %s: %s %s", request.method, request.url.path, exc.status, exc)
    return error_response(exc)


def install(app: Any | None = None) -> None:
    """Register :func:`handle` for every platform error on ``app`` (default: the app
    ``kserve.model_server`` serves; call before ``ModelServer.start``, with one worker)."""
    if app is None:
        from kserve import model_server

        app = model_server.app
    app.add_exception_handler(PlatformError, handle)
