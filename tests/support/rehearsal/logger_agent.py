"""EMULATED KServe v0.20 logger agent: the sidecar that logs a component's traffic.

When an InferenceService component has a ``logger``, KServe's pod webhook injects an agent in
front of its container (``pkg/webhook/admission/pod/agent_injector.go``) and every request
reaches the container through it. Per request the agent (``pkg/logger/handler.go``):

* skips kubelet probes (``network.IsKubeletProbe``);
* takes the request id from the client's ``Ce-Id`` header, else a new UUID (``getOrCreateID``);
* copies the request headers named in ``logger.metadataHeaders`` into a ``metadata`` map,
  comparing Go's canonical header names exactly (``slices.Contains(metadataHeaders, name)``);
* logs the request (mode ``all`` or ``request``) before proxying, and the response (mode
  ``all`` or ``response``) only when the container answered 200;
* hands each event to a worker that posts it asynchronously (``QueueLogRequest``), so the
  client's answer never waits for the sink.

The worker (``pkg/logger/worker.go``) posts a binary-mode CloudEvent: ``ce-specversion: 1.0``,
``ce-id``, ``ce-type`` (``org.kubeflow.serving.inference.request``/``...response``),
``ce-source`` (the agent's ``--source-uri``: the pod's name), ``ce-time`` (when the request or
response happened), and the extensions ``ce-recordedtime``, ``ce-inferenceservicename``,
``ce-namespace``, ``ce-component``, ``ce-endpoint`` (the pod's ``component`` and ``endpoint``
labels), ``ce-metadata`` (the JSON of the metadata map, ``{}`` when empty); the body as it
was, with the request's ``Content-Type`` on both events.

Here the agent is an object in the test process that the ingress (:mod:`.ingress`) calls for
each request to a revision with a logger; it posts with the ingress's aiohttp session.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

REQUEST = "org.kubeflow.serving.inference.request"
RESPONSE = "org.kubeflow.serving.inference.response"
#: (status, headers, body) of the container's answer.
Answer = tuple[int, Mapping[str, str], bytes]


def canonical(name: str) -> str:
    """Go's ``textproto.CanonicalMIMEHeaderKey``: ``x-mlp-traffic`` → ``X-Mlp-Traffic``."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def rfc3339(moment: datetime) -> str:
    """A CloudEvents timestamp as sdk-go writes it (UTC, ``Z``)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class LoggerAgent:
    """The agent of one pod, configured as ``agent_injector.go`` configures it."""

    log_url: str  # logger.url, resolved through the pod's cluster DNS
    mode: str  # logger.mode: all | request | response
    pod: str  # --source-uri: the pod's name
    inference_service: str  # the pod's serving.kserve.io/inferenceservice label
    namespace: str
    endpoint: str  # the pod's `endpoint` label ("" when it has none)
    component: str  # the pod's `component` label
    metadata_headers: list[str]
    resolve: Callable[[str], str]  # a host name → its address, as the pod resolves it
    sent: int = 0  # events the sink answered with 200
    failed: list[str] = field(default_factory=list)  # why the others were not
    _pending: set[asyncio.Task[None]] = field(default_factory=set)

    @classmethod
    def for_pod(
        cls,
        logger: Mapping[str, Any],
        pod: str,
        namespace: str,
        labels: Mapping[str, str],
        resolve: Callable[[str], str],
    ) -> LoggerAgent:
        return cls(
            log_url=str(logger["url"]),
            mode=str(logger.get("mode") or "all"),  # LoggerModeInternalAnnotationKey, default all
            pod=pod,
            inference_service=labels.get("serving.kserve.io/inferenceservice", ""),
            namespace=namespace,
            endpoint=labels.get("endpoint", ""),  # constants.KServiceEndpointLabel
            component=labels.get("component", ""),  # constants.KServiceComponentLabel
            metadata_headers=list(logger.get("metadataHeaders") or []),
            resolve=resolve,
        )

    async def handle(
        self,
        session: aiohttp.ClientSession,
        headers: Mapping[str, str],
        body: bytes,
        forward: Callable[[], Awaitable[Answer]],
    ) -> Answer:
        """Log the request, let ``forward`` reach the container, log a 200 response."""
        if headers.get("User-Agent", "").startswith("kube-probe/") or "K-Kubelet-Probe" in headers:
            return await forward()
        asked = datetime.now(UTC)
        metadata: dict[str, list[str]] = {}
        for name, value in headers.items():
            if canonical(name) in self.metadata_headers:
                metadata.setdefault(canonical(name), []).append(value)
        event_id = headers.get("Ce-Id") or str(uuid.uuid4())
        content_type = headers.get("Content-Type", "")
        if self.mode in ("all", "request"):
            self._queue(session, REQUEST, event_id, asked, metadata, content_type, body)
        status, out_headers, out_body = await forward()
        if status == 200 and self.mode in ("all", "response"):
            answered = datetime.now(UTC)
            self._queue(session, RESPONSE, event_id, answered, metadata, content_type, out_body)
        return status, out_headers, out_body

    def event_headers(
        self, kind: str, event_id: str, at: datetime, metadata: dict[str, list[str]], ctype: str
    ) -> dict[str, str]:
        """The binary-mode CloudEvent headers ``worker.go`` sends for one event."""
        headers = {
            "Ce-Specversion": "1.0",
            "Ce-Id": event_id,
            "Ce-Type": kind,
            "Ce-Source": self.pod,
            "Ce-Time": rfc3339(at),
            "Ce-Recordedtime": rfc3339(datetime.now(UTC)),
            "Ce-Inferenceservicename": self.inference_service,
            "Ce-Namespace": self.namespace,
            "Ce-Component": self.component,
            "Ce-Endpoint": self.endpoint,
            "Ce-Metadata": json.dumps(metadata, separators=(",", ":"), sort_keys=True),
        }
        if ctype:
            headers["Content-Type"] = ctype
        return headers

    def _queue(
        self,
        session: aiohttp.ClientSession,
        kind: str,
        event_id: str,
        at: datetime,
        metadata: dict[str, list[str]],
        ctype: str,
        body: bytes,
    ) -> None:
        headers = self.event_headers(kind, event_id, at, metadata, ctype)
        task = asyncio.create_task(self._send(session, headers, body))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _send(
        self, session: aiohttp.ClientSession, headers: dict[str, str], body: bytes
    ) -> None:
        """One POST; a failure is logged and dropped, as the worker does."""
        url = urlsplit(self.log_url)
        address = self.resolve(url.hostname or "")
        netloc = address if url.port is None else f"{address}:{url.port}"
        target = urlunsplit((url.scheme, netloc, url.path or "/", url.query, ""))
        headers = {**headers, "Host": url.netloc}
        try:
            async with session.post(target, data=body, headers=headers) as resp:
                answer = await resp.read()
                self.sent += resp.status == 200
                if resp.status != 200:  # worker.go logs the status and goes on
                    print(f"logger agent {self.pod}: {self.log_url} answered {resp.status}")
                    self.failed.append(f"{resp.status} {answer[:300]!r}")
        except aiohttp.ClientError as exc:
            print(f"logger agent {self.pod}: sending to {self.log_url} failed: {exc}")
            self.failed.append(str(exc))

    async def drain(self) -> None:
        """Wait until every queued event was posted."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
