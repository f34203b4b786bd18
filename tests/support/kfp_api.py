"""EMULATED: the part of the KFP 2.17 API server that ``kfp.Client`` uses to start a run.

No KFP backend runs here (it is a Go server with MySQL and Argo), so the retrain trigger's
``--backend kfp`` is tested against this stand-in on loopback. It answers exactly the REST
calls the pinned SDK makes (paths from ``kfp_server_api`` 2.17.3, ``api/*_service_api.py``):

* ``GET  /apis/v2beta1/healthz``: ``{"multi_user": false}`` (standalone KFP, cluster-facts.md);
* ``GET  /apis/v2beta1/experiments`` and ``/runs`` with a ``filter``: the backend's filter
  JSON (``{"predicates": [{"key", "operation": "EQUALS", "string_value"}]}``), of which only
  ``EQUALS`` on ``display_name`` is implemented, as ``kfp.Client.get_experiment`` and the
  trigger's run lookup send it; anything else is answered 400 so a test cannot pass on a
  filter this stand-in ignores;
* ``POST /apis/v2beta1/experiments`` and ``/runs``: stored in memory. A run's
  ``pipeline_spec`` must parse as a ``PipelineSpec`` (with its ``PlatformSpec`` when the
  pipeline has Kubernetes settings; unknown fields are errors), as the real server validates
  it, and its parameters are kept for the test to read back.

It does not run the pipeline.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

API = "/apis/v2beta1"


@dataclass
class KfpApi:
    """What the stand-in has been asked to store."""

    url: str
    experiments: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run_parameters(self, run: dict[str, Any]) -> dict[str, Any]:
        params: dict[str, Any] = run.get("runtime_config", {}).get("parameters", {})
        return params


def matches(obj: dict[str, Any], filter_json: str | None) -> bool:
    """The backend's filter (``backend/api/v2beta1/filter.proto``): ``EQUALS`` on
    ``display_name`` only, in both spellings clients send (the SDK's ``operation: 1`` with
    ``stringValue``, the retrain trigger's ``"EQUALS"`` with ``string_value``)."""
    for p in json.loads(filter_json or "{}").get("predicates", []):
        value = p.get("string_value", p.get("stringValue"))
        if p.get("key") != "display_name" or p.get("operation") not in ("EQUALS", 1):
            raise ValueError(f"filter not emulated: {p}")
        if obj.get("display_name") != value:
            return False
    return True


def check_spec(spec: dict[str, Any]) -> None:
    """A bare PipelineSpec, or ``{"pipeline_spec", "platform_spec"}`` as ``kfp.Client`` sends a
    pipeline with Kubernetes settings (``kfp/client/client.py``, ``_PipelineDoc``)."""
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    if "pipeline_spec" in spec:
        platform = pipeline_spec_pb2.PlatformSpec()
        json_format.ParseDict(spec["platform_spec"], platform, ignore_unknown_fields=False)
        spec = spec["pipeline_spec"]
    json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec(), ignore_unknown_fields=False)


def _handler(state: KfpApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet
            pass

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            collection = {f"{API}/experiments": "experiments", f"{API}/runs": "runs"}
            if parts.path == f"{API}/healthz":
                self._reply(200, {"multi_user": False})
                return
            if parts.path not in collection:
                self._reply(404, {"error": f"not emulated: GET {parts.path}"})
                return
            name = collection[parts.path]
            try:
                with state.lock:
                    found = [o for o in getattr(state, name) if matches(o, query.get("filter"))]
            except ValueError as exc:
                self._reply(400, {"error": str(exc)})
                return
            size = int(query.get("page_size", "0") or 0)
            self._reply(200, {name: found[:size] if size else found} if found else {})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            if self.path == f"{API}/experiments":
                obj = {**body, "experiment_id": uuid.uuid4().hex}
                target = state.experiments
            elif self.path == f"{API}/runs":
                try:
                    check_spec(body["pipeline_spec"])
                except Exception as exc:  # any parse error is a 400 here
                    self._reply(400, {"error": f"invalid pipeline_spec: {exc}"})
                    return
                obj = {**body, "run_id": uuid.uuid4().hex, "state": "PENDING"}
                target = state.runs
            else:
                self._reply(404, {"error": f"not emulated: POST {self.path}"})
                return
            with state.lock:
                target.append(obj)
            self._reply(200, obj)

    return Handler


@contextmanager
def kfp_api() -> Iterator[KfpApi]:
    """The stand-in on a free loopback port; stopped afterwards."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    state = KfpApi(url=f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = _handler(state)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
