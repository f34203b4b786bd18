"""Canary rollouts end to end on loopback: stand-in predictors, the router, the rollout
controller through LocalRouterBackend and a real MLflow registry, under client traffic.
Also the cluster's payload sink (KServe CloudEvents) and the KServe backend against it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from tests.support.router import (
    MODEL,
    body,
    cloud_event,
    register,
    router_config,
    running,
    stand_in,
)

from mlplatform.config import RegistryConfig, RolloutConfig, ServeConfig
from mlplatform.errors import TrafficError
from mlplatform.registry.mlflow_registry import CHALLENGER, CHAMPION, Registry
from mlplatform.serving import sink
from mlplatform.serving.payloads import EXPLAINER_HEADER, EXPLAINER_TRAFFIC, PayloadStore
from mlplatform.serving.rollout import RolloutController
from mlplatform.serving.router import RouterSettings, create_admin_app, create_app
from mlplatform.serving.traffic import KServeBackend, LocalRouterBackend

pytestmark = pytest.mark.slow

CFG = RolloutConfig(
    steps=(10, 50, 100),
    min_requests=40,
    max_step_seconds=30,
    max_p95_latency_ratio=5.0,  # both stand-ins share one busy test process
    max_prediction_shift=0.3,
    min_explain_fidelity=0.5,
)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    tmp = tmp_path_factory.mktemp("mlflow")
    reg = Registry(RegistryConfig(tracking_uri=f"sqlite:///{tmp}/m.db", artifact_root=str(tmp)))
    reg.client.create_registered_model(MODEL)
    reg.set_alias(MODEL, CHAMPION, register(reg), "first model")
    return reg


class Traffic:
    """Client threads posting predictions until stopped; records every non-200."""

    def __init__(self, url: str, clients: int = 2) -> None:
        self.url, self.sent = url, 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run) for _ in range(clients)]

    def _run(self) -> None:
        with httpx.Client(timeout=30) as c:
            while not self._stop.is_set():
                try:
                    r = c.post(f"{self.url}/v1/models/{MODEL}:predict", json=body(5))
                    failed = None if r.status_code == 200 else f"{r.status_code} {r.text}"
                except httpx.HTTPError as exc:
                    failed = repr(exc)
                with self._lock:
                    self.sent += 1
                    self.failures += [failed] if failed else []

    @contextmanager
    def running(self) -> Iterator[Traffic]:
        for t in self._threads:
            t.start()
        try:
            yield self
        finally:
            self._stop.set()
            for t in self._threads:
                t.join(30)


@contextmanager
def stack(tmp_path: Path, canary_fails: bool, version: str) -> Iterator[tuple[str, Any, str]]:
    """Stable + canary stand-ins behind a router (canary attached at 0%)."""
    with (
        running(stand_in(0.0, version="1")) as stable,
        running(stand_in(0.0, fail=canary_fails, version=version)) as canary,
    ):
        cfg = router_config(tmp_path, canary_percent=0)
        settings = RouterSettings(stable, canary, canary_version=version, admin_token="adm")
        app = create_app(cfg, settings)
        with running(app) as url, running(create_admin_app(app.state.router)) as admin:
            yield url, app.state.router, admin


def rollout(admin: str, reg: Registry, lines: list[str]) -> Any:
    backend = LocalRouterBackend(admin, token="adm")
    ctl = RolloutController(backend, CFG, reg, MODEL, poll_seconds=0.05, progress=lines.append)
    return ctl.run()


def test_broken_canary_is_rolled_back_without_failing_clients(
    tmp_path: Path, registry: Registry
) -> None:
    version = register(registry)
    registry.set_alias(MODEL, CHALLENGER, version)
    lines: list[str] = []
    with stack(tmp_path, True, version) as (url, router, admin), Traffic(url).running() as traffic:
        result = rollout(admin, registry, lines)
        time.sleep(0.2)  # traffic continues after the rollback
    assert result.outcome == "rolled_back" and "canary_error_rate" in result.reason
    assert traffic.failures == [] and traffic.sent > 100
    assert router.routing.canary is None
    rows = router.store.requests(0, time.time() + 1)
    assert len(rows) == traffic.sent and set(rows["variant"]) == {"stable"}
    assert rows["error"].str.contains("canary failed with HTTP 500").sum() >= CFG.min_requests
    tags = registry.version(MODEL, version).tags
    assert "canary_error_rate" in tags["rollback.reason"] and tags["rollback.at"]
    assert registry.by_alias(MODEL, CHALLENGER) is None
    assert registry.by_alias(MODEL, CHAMPION).version != version  # type: ignore[union-attr]
    assert any("rolled_back" in line for line in lines)


def test_good_canary_is_promoted_step_by_step_without_failing_clients(
    tmp_path: Path, registry: Registry
) -> None:
    version = register(registry)
    registry.set_alias(MODEL, CHALLENGER, version)
    with stack(tmp_path, False, version) as (url, router, admin), Traffic(url).running() as traffic:
        canary_url = router.routing.canary.url
        result = rollout(admin, registry, [])
        time.sleep(0.2)
    assert result.outcome == "promoted", result.reason
    moves = [(i, d.action) for i, d in result.decisions if d.action != "wait"]
    assert moves == [(0, "advance"), (1, "advance"), (2, "promote")]
    assert traffic.failures == [] and traffic.sent > 100
    assert router.routing.canary is None and router.routing.stable.url == canary_url
    assert router.routing.stable.version == version
    assert router.store.count() == traffic.sent
    champion = registry.by_alias(MODEL, CHAMPION)
    assert champion is not None and champion.version == version
    assert "prediction_shift_ks" in champion.tags["champion.reason"]
    assert registry.by_alias(MODEL, CHALLENGER) is None


def test_a_canary_serving_another_version_is_refused_before_any_traffic_moves(
    tmp_path: Path, registry: Registry
) -> None:
    version = register(registry)
    registry.set_alias(MODEL, CHALLENGER, version)
    stale = str(int(version) - 1)  # the canary revision still serves an older version
    try:
        with stack(tmp_path, False, stale) as (_, router, admin):
            with pytest.raises(TrafficError, match=f"does not serve the challenger v{version}"):
                rollout(admin, registry, [])
            assert router.routing.canary_percent == 0 and router.routing.canary is not None
        assert registry.by_alias(MODEL, CHALLENGER).version == version  # type: ignore[union-attr]
        assert "rollback.at" not in registry.version(MODEL, version).tags
    finally:
        registry.delete_alias(MODEL, CHALLENGER)


# -- the cluster's payload sink and the KServe backend --------------------------------------
class FakeCustomObjectsApi:
    """The one InferenceService as the chart renders it during a canary of version 5 (the
    latest revision's predictor labelled ``endpoint: v5``), and the patches sent to it."""

    def __init__(self, endpoint: str | None = "v5", ready: bool = True) -> None:
        labels = {"endpoint": endpoint} if endpoint else {}
        revisions = {"latestCreatedRevision": f"{MODEL}-predictor-00002"}
        revisions["latestReadyRevision"] = revisions["latestCreatedRevision"] if ready else "-1"
        self.obj = {
            "spec": {"predictor": {"labels": labels, "canaryTrafficPercent": 10}},
            "status": {"components": {"predictor": revisions}},
        }
        self.patches: list[tuple[Any, ...]] = []

    def get_namespaced_custom_object(self, *args: Any) -> dict[str, Any]:
        return self.obj

    def patch_namespaced_custom_object(self, *args: Any) -> dict[str, Any]:
        self.patches.append(args)
        return {}


def test_sink_merges_kserve_events_and_feeds_the_kserve_backend(tmp_path: Path) -> None:
    """Stable (v4) and canary (v5) are told apart by the revision's endpoint label; the
    explainer's calls to the predictor are acknowledged and not stored."""
    request = {"instances": [[1.0, 2.0]]}
    response = {"predictions": [3.0], "model_version": "4"}
    app = sink.create_app(
        ServeConfig(payload_store=f"sqlite:///{tmp_path}/sink.db", response_grace_seconds=0.3),
        task="regression",
        feedback_token="fb",
    )
    explainer = cloud_event("request", "x", request, "v4")
    explainer["headers"]["ce-metadata"] = orjson.dumps({EXPLAINER_HEADER: [EXPLAINER_TRAFFIC]})
    with running(app) as url, httpx.Client(base_url=url) as c:
        posts = [
            cloud_event("request", "a", request, "v4"),
            cloud_event("response", "a", response, "v4"),
            cloud_event("response", "b", {**response, "model_version": "5"}, "v5"),  # out of order
            cloud_event("request", "b", request, "v5"),
            cloud_event("request", "c", request, "v5"),  # never answered: an error
        ]
        assert all(c.post("/", **p).status_code == 200 for p in posts)
        skipped = c.post("/", **explainer)
        assert skipped.status_code == 200 and skipped.json()["skipped"] == "x"
        assert c.post("/", json={"not": "an event"}).status_code == 400
        assert c.get("/healthz").json() == {"ok": True}
        auth = {"Authorization": "Bearer fb"}
        label = {"request_id": "a", "label": 2.0}
        assert c.post("/v1/feedback", json=label, headers=auth).status_code == 200
        unknown = {"request_id": "z", "label": 1}
        assert c.post("/v1/feedback", json=unknown, headers=auth).status_code == 404
        deadline = time.monotonic() + 10  # until "c" is past the grace and counted
        while c.get("/stats", params={"model": MODEL}).json().get("v5", {}).get("requests") != 2:
            assert time.monotonic() < deadline, "request c never settled"
            time.sleep(0.02)
        api = FakeCustomObjectsApi()
        backend = KServeBackend("models", MODEL, api, url, since=0.0)
        assert backend.serves("5") and not backend.serves("4")
        stable, canary = backend.stats()
        backend.set_canary_percent(10)
        backend.promote()
        backend.rollback()
        by_endpoint = c.get("/stats", params={"model": MODEL}).json()
    assert (stable.requests, stable.errors, stable.ground_truth_error) == (1, 0, 1.0)
    assert (stable.labelled, canary.labelled) == (1, 0)  # what min_labels is compared with
    assert (canary.requests, canary.errors) == (2, 1)
    assert list(canary.predictions) == [3.0]
    assert {k: v["requests"] for k, v in by_endpoint.items()} == {"v4": 1, "v5": 2}
    assert {k: v["labelled"] for k, v in by_endpoint.items()} == {"v4": 1, "v5": 0}
    target = ("serving.kserve.io", "v1beta1", "models", "inferenceservices", MODEL)
    assert all(p[:5] == target for p in api.patches)
    assert [p[5]["spec"]["predictor"]["canaryTrafficPercent"] for p in api.patches] == [10, None, 0]
    with PayloadStore(tmp_path / "sink.db") as store:
        rows = store.requests(0, time.time() + 1).set_index("request_id")
    assert "x" not in rows.index
    assert rows.loc["a", "model_version"] == "4" and rows.loc["a", "latency_ms"] >= 0
    assert rows.loc["b", "variant"] == "v5" and rows.loc["b", "n_instances"] == 1
    assert rows.loc["b", "latency_ms"] is not None and rows.loc["c", "response"] is None


def test_kserve_backend_refuses_revisions_it_cannot_tell_apart() -> None:
    """KServe's own ``endpoint`` is ``default`` for both revisions: without the chart's
    label there is nothing to count the canary by, and that is an error, not 0 requests."""
    backend = KServeBackend("models", MODEL, FakeCustomObjectsApi(endpoint=None), "http://x")
    with pytest.raises(TrafficError, match="no 'endpoint' label"):
        backend.stats()
    assert not backend.serves("5")
    not_ready = KServeBackend("models", MODEL, FakeCustomObjectsApi(ready=False), "http://x")
    assert not not_ready.serves("5")
