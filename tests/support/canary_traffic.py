"""Client traffic and per-server oracles for canary tests with real predictors.

* :func:`traffic_rows`: hundreds of distinct feature rows, drawn from the dataset generator
  with a seed of their own (not the training rows);
* :class:`Clients`: threads posting random batches of those rows through the router;
* :func:`served_count`: how many predictions a KServe predictor process says it has made
  (its own ``request_predict_seconds`` histogram on ``/metrics``), an oracle that does not go
  through the router's routing or accounting code;
* :class:`Gate`: a pass-through in front of one real predictor that can hold requests in
  flight, so a test can switch traffic while requests are provably in flight.
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from tests.support.router import running

from mlplatform.config import PlatformConfig
from mlplatform.core.training import generate

Row = list[float]
_PREDICT_COUNT = re.compile(r'^request_predict_seconds_count\{model_name="([^"]+)"\} (\S+)$', re.M)


def traffic_rows(cfg: PlatformConfig, n: int, seed: int) -> list[Row]:
    """``n`` distinct rows of ``cfg``'s features from the generator seeded with ``seed``."""
    df = generate(cfg.data.model_copy(update={"seed": seed, "rows": n}))
    rows: list[Row] = df[list(cfg.feature_names)].drop_duplicates().to_numpy(float).tolist()
    assert len(rows) == n, "the generator repeated a row: pick another seed"
    return rows


def served_count(url: str, model: str) -> int:
    """Predictions the KServe server at ``url`` has served for ``model`` (its own metric)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    counts = {name: float(v) for name, v in _PREDICT_COUNT.findall(text)}
    return int(counts.get(model, 0.0))


class Clients:
    """``n`` threads posting batches of 1-``batch`` random rows of ``rows`` until stopped (or
    until ``target`` requests were sent: :attr:`reached` is set); every non-200 is a failure.
    :attr:`versions` counts the ``model_version`` of the answers' bodies (the predictor's)."""

    def __init__(
        self, url: str, n: int, rows: list[Row], batch: int = 8, target: int | None = None
    ) -> None:
        self.url, self.rows, self.batch, self.target = url, rows, batch, target
        self.sent = 0
        self.failures: list[str] = []
        self.versions: dict[str | None, int] = {}  # None: no answer
        self.reached = threading.Event()
        self._stop, self._lock = threading.Event(), threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(n)]

    def _run(self, seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(timeout=60) as c:
            while not self._stop.is_set():
                body = {"instances": rng.sample(self.rows, rng.randint(1, self.batch))}
                self._record(*answer(c, self.url, body))

    def _record(self, version: str | None, bad: str | None) -> None:
        with self._lock:
            self.sent += 1
            self.versions[version] = self.versions.get(version, 0) + 1
            if bad:
                self.failures.append(bad)
            if self.target is not None and self.sent >= self.target:
                self.reached.set()

    def __enter__(self) -> Clients:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)


def answer(client: httpx.Client, url: str, body: dict[str, Any]) -> tuple[str | None, str | None]:
    """POST ``body`` to the router's predict route: (body's model_version, failure or None)."""
    try:
        r = client.post(f"{url}/v1/models/credit-risk:predict", json=body)
    except httpx.HTTPError as exc:
        return None, repr(exc)
    if r.status_code != 200:
        return None, f"{r.status_code} {r.text[:200]}"
    return str(r.json()["model_version"]), None


class Gate:
    """Forwards every request to ``target`` (a real predictor); while :meth:`hold` is on, each
    request waits at the gate until :meth:`release`. Counts what arrived and what is still
    unanswered (``outstanding``: decremented before the answer leaves the gate)."""

    def __init__(self, target: str = "") -> None:
        self.target = target
        self.arrived = self.outstanding = 0
        self._open = threading.Event()
        self._open.set()
        self._cond = threading.Condition()

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def wait_arrived(self, n: int, timeout: float = 30) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: self.arrived >= n, timeout), self.arrived

    def _count(self, arrived: int, outstanding: int) -> None:
        with self._cond:
            self.arrived += arrived
            self.outstanding += outstanding
            self._cond.notify_all()

    async def forward(self, request: Request) -> Response:
        self._count(1, 1)
        try:
            await anyio.to_thread.run_sync(self._open.wait)
            async with httpx.AsyncClient(timeout=60) as c:
                up = await c.request(
                    request.method,
                    self.target + request.url.path,
                    content=await request.body(),
                    headers={"content-type": request.headers.get("content-type", "")},
                )
        finally:
            self._count(0, -1)
        media = up.headers.get("content-type")
        return Response(up.content, up.status_code, media_type=media)

    def app(self) -> Starlette:
        methods = ["GET", "POST"]
        return Starlette(routes=[Route("/{path:path}", self.forward, methods=methods)])


@contextmanager
def serving(app: Starlette, port: int) -> Iterator[str]:
    """Serve ``app`` with uvicorn on loopback ``port`` in a background thread."""
    with running(app, port) as url:
        yield url
