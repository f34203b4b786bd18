"""What the rehearsal does from outside the cluster, as a laptop would: a client sending
predicts through the ingress, ``kubectl port-forward``, and the repository's scripts run as
modules. Used by :mod:`.story`."""

from __future__ import annotations

import importlib
import itertools
import socket
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import httpx
from tests.support.rehearsal.pods import ServicePort
from tests.support.rehearsal.world import ROOT, World

Obj = dict[str, Any]
NAMESPACE = "mlplatform"
Post = Callable[[str, str, str, Obj, "str | None"], httpx.Response]


def script(name: str) -> ModuleType:
    """``scripts/<name>.py`` as a module (its folder on sys.path, as when it is run)."""
    if str(ROOT / "scripts") not in sys.path:
        sys.path.insert(0, str(ROOT / "scripts"))
    return importlib.import_module(name)


def port_forward(world: World, service: str, port: int) -> str:
    """EMULATED ``kubectl port-forward svc/<service>``: a local port to the Service."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        local = s.getsockname()[1]
    world.proxy.add(ServicePort("127.0.0.1", local, port, [world.dns.names(NAMESPACE)[service]]))
    return f"http://127.0.0.1:{local}"


@dataclass
class Traffic:
    """A client: predicts to each model's predictor through the ingress, each with its own
    ``Ce-Id`` (the logger agent keeps a client's id), rows from ``rows[model]``."""

    post: Post  # (model, component, path, body, request id) → the answer, via the ingress
    models: tuple[str, ...]
    rows: dict[str, list[Obj]]
    batch: int = 1
    sent: list[tuple[str, str]] = field(default_factory=list)  # (model, request id)
    answered: Counter[tuple[str, str]] = field(default_factory=Counter)  # (model, version)
    failed: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def one(self, model: str, i: int) -> None:
        rows = self.rows[model]
        body = {"instances": [rows[(i * self.batch + k) % len(rows)] for k in range(self.batch)]}
        rid = f"client-{uuid.uuid4()}"
        self.sent.append((model, rid))
        r = self.post(model, "predictor", f"/v1/models/{model}:predict", body, rid)
        if r.status_code == 200:
            self.answered[(model, str(r.json()["model_version"]))] += 1
        else:
            self.failed.append(f"{model} {r.status_code} {r.text[:200]}")

    def start(self, workers: int = 4, pause: float = 0.02) -> None:
        def loop(k: int) -> None:
            for i in itertools.count(k, workers):
                if self._stop.is_set():
                    return
                self.one(self.models[i % len(self.models)], i)
                time.sleep(pause)

        self._threads = [threading.Thread(target=loop, args=(k,)) for k in range(workers)]
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)
