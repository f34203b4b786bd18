"""The canary router: one endpoint for clients in front of the stable (champion) and canary
(challenger) predictors, with a traffic split, per-variant statistics and the payload log.

    python -m mlplatform.serving.router --config configs/house-price.yaml \\
        --stable-url http://127.0.0.1:8081 --canary-url http://127.0.0.1:8082 --port 8080 \\
        --admin-port 8090   # MLPLATFORM_FEEDBACK_TOKEN, MLPLATFORM_ADMIN_TOKEN in the environment

Routing. A request goes to the canary with probability ``canary_percent``/100 unless the
header ``x-mlplatform-variant: stable|canary`` pins it (only with the admin token). Admin
calls (on the admin port, :func:`create_admin_app`, with the admin token) replace the immutable
:class:`~mlplatform.serving.traffic.Routing` in one assignment; a request keeps the one it
started with, and promote/rollback return once the retired variant has no request in
flight, so switching never fails a client request.

Failures. A canary request that fails (5xx or unreachable) counts against the canary (its
statistics, ``errors_total``) and, unless the client pinned the canary, is retried once on
the stable variant: clients do not see a broken canary, the rollout controller does. Its
payload row records ``variant=stable`` and the canary's failure in ``error``. Upstream 4xx
are passed through and are not variant errors; an unreachable upstream gives 503.

Every inference request, including those the router rejects (400/401/404/409/413, ``variant``
NULL), is in the payload log, under a request id the router issued, before its response is sent.
Feedback and the admin API need bearer tokens (:mod:`mlplatform.serving.tokens`).

Layout: :mod:`.settings` (:class:`RouterSettings`), :mod:`.messages` (:class:`Call`,
:class:`Reply`, :func:`error_reply`, parsing bodies and headers), :mod:`.canary`
(:class:`CanaryRouter`), :mod:`.app` (:func:`create_app`) and :mod:`.cli` (:func:`main`).
"""

from mlplatform.serving.router.app import Handler, create_admin_app, create_app
from mlplatform.serving.router.canary import CanaryRouter
from mlplatform.serving.router.cli import main
from mlplatform.serving.router.messages import (
    FORWARDED_HEADERS,
    VARIANT_HEADER,
    Call,
    Reply,
    error_reply,
    error_response,
    json_response,
    parse_feedback,
)
from mlplatform.serving.router.settings import RouterSettings

__all__ = [
    "FORWARDED_HEADERS",
    "VARIANT_HEADER",
    "Call",
    "CanaryRouter",
    "Handler",
    "Reply",
    "RouterSettings",
    "create_admin_app",
    "create_app",
    "error_reply",
    "error_response",
    "json_response",
    "main",
    "parse_feedback",
]
