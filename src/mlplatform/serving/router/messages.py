"""One request through the router (:class:`Call`), an upstream's answer (:class:`Reply`), the
one translation of platform errors into answers (:func:`error_reply`), and parsing what
clients and upstreams send."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from mlplatform.errors import PlatformError, RequestError, UnknownRequestError
from mlplatform.serving.payloads import PayloadRecord

VARIANT_HEADER = "x-mlplatform-variant"
FORWARDED_HEADERS = ("content-type", "accept", "traceparent")


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


def error_reply(exc: PlatformError, seconds: float = 0.0) -> Reply:
    """The router's and sink's one translation of an error: the class's HTTP ``status`` and
    ``{"error": reason}`` (plus the ``unknown`` ids of an :class:`UnknownRequestError`)."""
    doc: dict[str, Any] = {"error": str(exc)}
    if isinstance(exc, UnknownRequestError):
        doc["unknown"] = exc.missing
    return Reply(exc.status, orjson.dumps(doc), {}, seconds, str(exc))


def error_response(exc: PlatformError, headers: dict[str, str] | None = None) -> Response:
    """:func:`error_reply` as a JSON response (for answers that skip the payload log)."""
    reply = error_reply(exc)
    return Response(reply.content, reply.status, headers, media_type="application/json")


def json_response(status: int, doc: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(doc), status, headers, media_type="application/json")


def _request_id(request: Request) -> str | None:
    """The client's ``x-request-id`` (at most 200 characters), or None when not sent."""
    rid = request.headers.get("x-request-id") or None
    if rid is not None and len(rid) > 200:
        raise RequestError(f"x-request-id has {len(rid)} characters; at most 200")
    return rid


def _count(rows: list[Any], endpoint: str) -> int:
    """Instances of a v1 ``instances`` list, or rows (``shape[0]``) of the first v2 input."""
    if endpoint != "infer":
        return len(rows)
    shape = rows[0].get("shape") if rows and isinstance(rows[0], dict) else None
    if not isinstance(shape, list) or not shape or not isinstance(shape[0], int):
        raise RequestError('each of "inputs" needs "name", "shape", "datatype" and "data"')
    return shape[0]


def parse_feedback(body: bytes) -> list[tuple[str, Any]]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(f"malformed JSON: {exc}") from None
    docs = doc if isinstance(doc, list) else [doc]
    ok = all(
        isinstance(d, dict) and isinstance(d.get("request_id"), str) and "label" in d for d in docs
    )
    if not docs or not ok:
        raise RequestError('feedback is {"request_id": "...", "label": value} or a list of them')
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
