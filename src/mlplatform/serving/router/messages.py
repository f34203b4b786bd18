"""One request through the router (:class:`Call`), an upstream's answer (:class:`Reply`), the
one translation of platform errors into answers (:func:`error_reply`), and parsing what
clients and upstreams send."""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from mlplatform.errors import (
    LabelConflictError,
    PlatformError,
    RequestError,
    TooManyInstancesError,
    UnauthorizedError,
    UnknownRequestError,
)
from mlplatform.serving.payloads import PayloadRecord

VARIANT_HEADER = "x-mlplatform-variant"
#: Bytes of a refused request's body kept in the payload log (the rest is counted, not kept).
REJECTED_BODY_BYTES = 4096
#: The Open Inference Protocol's binary tensor extension: the body's first N bytes are the JSON
#: request, the rest raw tensor data. Forwarded both ways unchanged.
INFERENCE_HEADER = "inference-header-content-length"
FORWARDED_HEADERS = ("content-type", "accept", "traceparent", INFERENCE_HEADER)


@dataclass
class Call:
    """One inference request on its way through the router; ``rid`` is issued here (a client's
    ``x-request-id`` is ignored), so feedback can only name requests the router answered."""

    request: Request
    endpoint: str  # predict | infer | explain
    rid: str = field(default_factory=lambda: str(uuid.uuid4()))
    start: float = field(default_factory=time.time)
    body: bytes = b""
    n: int | None = None

    def json_size(self) -> int | None:
        """The JSON part's length under the binary tensor extension (None without it)."""
        return json_size(self.request.headers.get(INFERENCE_HEADER), len(self.body))

    def json_part(self, strict: bool = True) -> bytes:
        """The JSON request (the whole body without the extension); with ``strict`` False a
        bad length header gives the whole body instead of a 400 (for the log)."""
        try:
            size = self.json_size()
        except RequestError:
            if strict:
                raise
            size = None
        return self.body if size is None else self.body[:size]

    def record(self, variant: str | None, version: str | None, reply: Reply) -> PayloadRecord:
        name = self.request.path_params["name"]
        latency = reply.seconds * 1000 if reply.seconds else None
        body = self.json_part(strict=False)
        if len(body) < len(self.body):  # binary tensor data: logged as its size only
            body += f"…[{len(self.body) - len(body)} bytes of binary tensor data]".encode()
        if 400 <= reply.status < 500 and len(body) > REJECTED_BODY_BYTES:
            tail = f"…[{len(body) - REJECTED_BODY_BYTES} more bytes not kept: refused]"
            body = body[:REJECTED_BODY_BYTES] + tail.encode()
        request = body.decode(errors="replace") or None
        size = reply.headers.get(INFERENCE_HEADER, "")
        content = reply.content[: int(size)] if size.isdigit() else reply.content
        response = content.decode(errors="replace")
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
    ``{"error": reason}`` (plus the ``unknown`` ids of an :class:`UnknownRequestError`, the
    ``conflicts`` of a :class:`LabelConflictError`)."""
    doc: dict[str, Any] = {"error": str(exc)}
    if isinstance(exc, UnknownRequestError):
        doc["unknown"] = exc.missing
    if isinstance(exc, LabelConflictError):
        doc["conflicts"] = exc.conflicts
    return Reply(exc.status, orjson.dumps(doc), {}, seconds, str(exc))


def error_response(exc: PlatformError, headers: dict[str, str] | None = None) -> Response:
    """:func:`error_reply` as a JSON response (for answers that skip the payload log); a 401
    names the scheme to use (``WWW-Authenticate: Bearer``)."""
    reply = error_reply(exc)
    if isinstance(exc, UnauthorizedError):
        headers = {**(headers or {}), "www-authenticate": "Bearer"}
    return Response(reply.content, reply.status, headers, media_type="application/json")


def json_response(status: int, doc: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(doc), status, headers, media_type="application/json")


def json_size(header: str | None, length: int) -> int | None:
    """The ``inference-header-content-length`` of a body of ``length`` bytes (400 if it is not
    a length within the body)."""
    if header is None:
        return None
    if not header.isdigit() or int(header) > length:
        raise RequestError(f"{INFERENCE_HEADER}: {header!r} is not a length within the body")
    return int(header)


def count_instances(body: bytes, endpoint: str, limit: int) -> int:
    """JSON shape and instance count of a request body (the JSON part of a binary one): 400
    when malformed, 413 over ``limit``."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(f"malformed JSON: {exc}") from None
    key = "inputs" if endpoint == "infer" else "instances"
    if not isinstance(doc, dict) or not isinstance(doc.get(key), list):
        raise RequestError(f'expected a JSON object with an "{key}" list')
    n = _count(doc[key], endpoint)
    if n > limit:
        raise TooManyInstancesError(f"{n} instances exceed serve.max_instances={limit}")
    return n


def _count(rows: list[Any], endpoint: str) -> int:
    """Instances of a v1 ``instances`` list, or rows (``shape[0]``) of the first v2 input."""
    if endpoint != "infer":
        return len(rows)
    shape = rows[0].get("shape") if rows and isinstance(rows[0], dict) else None
    if not isinstance(shape, list) or not shape or not isinstance(shape[0], int):
        raise RequestError('each of "inputs" needs "name", "shape", "datatype" and "data"')
    return shape[0]


def parse_feedback(body: bytes, task: str) -> list[tuple[str, Any]]:
    """``(request id, label)`` pairs of a feedback body, each label checked against ``task``
    (:func:`check_label`)."""
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
    return [(d["request_id"], check_label(d["label"], task, d["request_id"])) for d in docs]


def check_label(label: Any, task: str, rid: str = "") -> Any:
    """A label as stored: 0 or 1 (as int) for ``classification``, a finite number for
    ``regression``, or a non-empty list of them (one per instance); else a 400 with the reason.

    >>> check_label(1.0, "classification"), check_label([2.5, 3], "regression")
    (1, [2.5, 3])
    """
    values = label if isinstance(label, list) else [label]
    if not values:
        raise RequestError(f"label of {rid!r}: an empty list")
    checked = [_value(v, task, rid) for v in values]
    return checked if isinstance(label, list) else checked[0]


def _value(v: Any, task: str, rid: str) -> int | float:
    number = isinstance(v, int | float) and not isinstance(v, bool)
    if not number or not math.isfinite(v):
        raise RequestError(f"label of {rid!r}: {v!r} is not a finite number")
    if task != "classification":
        return v  # type: ignore[no-any-return]
    if v not in (0, 1):
        raise RequestError(f"label of {rid!r}: {v!r}; a classification label is 0 or 1")
    return int(v)


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
