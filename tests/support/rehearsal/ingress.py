"""EMULATED cluster-local ingress: Kourier's gateway as Knative and KServe program it.

* **One address** for every InferenceService name: the Service ``kourier-internal`` of
  ``kourier-system``, port 80 (net-kourier knative-v1.21.0 ``config/300-gateway.yaml``).
  Knative gives each ksvc (``<isvc>-predictor``, ...) a Service of type ExternalName that
  points there, and KServe does the same for the top-level ``<isvc>`` name
  (``reconcileExternalService`` in kserve v0.20.0 ``pkg/controller/v1beta1/inferenceservice/
  reconcilers/ingress/ingress_reconciler.go``); here those names get the gateway's address in
  the rehearsal's DNS (:meth:`Ingress.register`).
* **Routing by the Host header** (port ignored): a ksvc answers to ``<name>.<ns>``,
  ``<name>.<ns>.svc`` and ``<name>.<ns>.svc.cluster.local`` (``ingress.ExpandedHosts``, vendored
  knative.dev/networking ``pkg/ingress/ingress.go``); an unknown host is a 404, as Envoy
  answers when no virtual host matches.
* **Revision split**: each request picks one traffic target at random, weighted by its
  percent (Envoy weighted clusters, ``pkg/generator/ingress_translator.go``), then one of that
  revision's ready pods in turn.
* **The top-level name** (``<isvc>.<ns>[.svc[.cluster.local]]``, KServe's ``HostRegExp``): a
  path matching ``^/v1/models/[\\w-]+:explain$`` (``constants.ExplainPrefix``) goes to the
  explainer, everything else to the transformer if there is one, else the predictor, with the
  ``Host`` rewritten to that component's name and ``KServe-Isvc-Name``/``KServe-Isvc-Namespace``
  set (``createIngress`` in ``ingress_reconciler.go``).
* A revision whose pods have a logger agent (:mod:`.logger_agent`) is reached through it.
* **Retiring a revision**: the routes move first, then the old revision's pods stop once the
  requests already sent to them are answered (:meth:`Ingress.wait_idle`, bounded by the
  queue-proxy's 30 s quiet period, ``drainSleepDuration`` in knative.dev/serving
  ``pkg/queue/sharedmain``: a pod leaving a route keeps serving while the networking layer
  forgets it). Stopping first made a request already routed there a 503.

Not emulated: TLS, HTTP/2, the activator and scale from zero, retries, timeouts per route.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import re
import threading
import time
from collections.abc import Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from tests.support.rehearsal.logger_agent import Answer, LoggerAgent
from tests.support.rehearsal.pods import CLUSTER_DOMAIN, ClusterDns

GATEWAY = ("kourier-system", "kourier-internal")
EXPLAIN = re.compile(r"^/v1/models/[\w-]+:explain$")
#: Headers one hop does not pass on (aiohttp sets the framing itself).
HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "upgrade"}


def local_hosts(name: str, namespace: str) -> list[str]:
    """The cluster-local host names of ``name`` in ``namespace`` (``ExpandedHosts``)."""
    return [
        f"{name}.{namespace}",
        f"{name}.{namespace}.svc",
        f"{name}.{namespace}.{CLUSTER_DOMAIN}",
    ]


@dataclass
class Backend:
    """One revision's ready pods (``ip:port``) and, with a logger, the pods' agent."""

    revision: str
    addresses: list[str]
    agent: LoggerAgent | None = None
    inflight: int = 0  # requests sent here and not yet answered (the ingress's loop only)
    _turn: Iterator[int] = field(default_factory=itertools.count)

    def address(self) -> str:
        return self.addresses[next(self._turn) % len(self.addresses)]


@dataclass(frozen=True)
class TopLevel:
    """KServe's routes for the InferenceService's own name."""

    isvc: str
    namespace: str
    default_host: str  # the transformer's or the predictor's host
    explain_host: str | None


class Ingress:
    """The gateway: an aiohttp server on its own event loop thread (like the kube-proxy)."""

    def __init__(self, dns: ClusterDns, rng: random.Random | None = None) -> None:
        self.dns = dns
        self.ip = dns.add_service(*GATEWAY)
        self.port = 80
        self.rng = rng or random.Random()
        self.routes: dict[str, list[tuple[Backend, int]]] = {}
        self.top: dict[str, TopLevel] = {}
        self.agents: list[LoggerAgent] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self._run(self._start())

    def _run(self, coro: Coroutine[Any, Any, None], timeout: float = 30) -> None:
        asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self) -> None:
        timeout = aiohttp.ClientTimeout(total=300)
        self.session = aiohttp.ClientSession(timeout=timeout, auto_decompress=False)
        # The agents' events: a new connection each. On a reused one a post can race the
        # sink's keep-alive close, which the emulated kube-proxy passes on late (Go's
        # transport drops such idle connections at once): a lost event would be ours.
        fresh = aiohttp.TCPConnector(force_close=True)
        self.events = aiohttp.ClientSession(timeout=timeout, connector=fresh)
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, self.ip, self.port).start()

    # -- configuration (called by the controller) -------------------------------------------
    def register(self, namespace: str, name: str) -> None:
        """``name`` in ``namespace`` resolves to the gateway (an ExternalName Service)."""
        self.dns.services[(namespace, name)] = self.ip

    def set_route(self, hosts: Iterable[str], targets: list[tuple[Backend, int]]) -> None:
        """Swap the routes on the gateway's own loop: a request has picked its backend (and
        counted itself in ``inflight``) either before the swap or after it."""
        live = [(b, p) for b, p in targets if b.addresses]
        names = list(hosts)

        async def swap() -> None:
            self.agents += [b.agent for b, _ in live if b.agent and b.agent not in self.agents]
            for host in names:
                self.routes[host] = live

        self._run(swap())

    def wait_idle(self, backend: Backend, timeout: float = 30) -> bool:
        """Wait until no request is in flight to ``backend`` (call after :meth:`set_route`
        has taken it out of every route); False after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while backend.inflight and time.monotonic() < deadline:
            time.sleep(0.02)
        return not backend.inflight

    def set_top_level(self, hosts: Iterable[str], top: TopLevel) -> None:
        for host in hosts:
            self.top[host] = top

    def forget(self, hosts: Iterable[str]) -> None:
        for host in hosts:
            self.routes.pop(host, None)
            self.top.pop(host, None)

    # -- traffic -----------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        host = (request.headers.get("Host") or "").split(":")[0].lower()
        headers = CIMultiDict(request.headers)
        if host in self.top:
            top = self.top[host]
            explain = top.explain_host and EXPLAIN.match(request.path)
            host = top.explain_host if explain and top.explain_host else top.default_host
            headers["Host"] = host
            headers["KServe-Isvc-Name"] = top.isvc
            headers["KServe-Isvc-Namespace"] = top.namespace
        targets = self.routes.get(host)
        if not targets:
            return web.Response(status=404, text=f"no route for host {host!r}\n")
        backends, weights = zip(*targets, strict=True)
        backend = self.rng.choices(backends, weights=weights)[0]
        backend.inflight += 1  # no await since the pick: the route swap cannot come between
        try:
            return await self._send(request, backend, headers)
        finally:
            backend.inflight -= 1

    async def _send(
        self, request: web.Request, backend: Backend, headers: CIMultiDict[str]
    ) -> web.StreamResponse:
        body = await request.read()

        async def forward() -> Answer:
            return await self._forward(
                backend.address(), request.method, request.path_qs, headers, body
            )

        if backend.agent is None:
            status, out_headers, out_body = await forward()
        else:
            status, out_headers, out_body = await backend.agent.handle(
                self.events, headers, body, forward
            )
        kept = {k: v for k, v in out_headers.items() if k.lower() not in HOP}
        return web.Response(status=status, body=out_body, headers=kept)

    async def _forward(
        self, address: str, method: str, path: str, headers: CIMultiDict[str], body: bytes
    ) -> Answer:
        sent = {k: v for k, v in headers.items() if k.lower() not in HOP}
        try:
            async with self.session.request(
                method, f"http://{address}{path}", headers=sent, data=body
            ) as resp:
                return resp.status, CIMultiDict(resp.headers), await resp.read()
        except aiohttp.ClientError as exc:
            return 503, {}, f"upstream connect error: {exc}\n".encode()

    def drain(self) -> None:
        """Wait until every logger agent posted what it queued."""
        for agent in self.agents:
            self._run(agent.drain(), 120)

    def close(self) -> None:
        async def stop() -> None:
            await self.runner.cleanup()
            for agent in self.agents:  # no event left half-sent
                await agent.drain()
            await self.session.close()
            await self.events.close()

        self._run(stop(), 120)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()
