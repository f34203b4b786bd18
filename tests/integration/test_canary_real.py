"""Canary rollouts with the real servers: `LocalStack` (KServe predictors for champion and
challenger behind the router), the rollout controller and a real MLflow registry, under load."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from tests.support.servers import free_port, setup_model, start, write_config

from mlplatform.registry.mlflow_registry import CHALLENGER, CHAMPION, Registry
from mlplatform.serving.payloads import PayloadStore
from mlplatform.serving.rollout import RolloutController
from mlplatform.serving.stack import LocalStack
from mlplatform.serving.traffic import LocalRouterBackend

pytestmark = pytest.mark.slow
ROW = [[40, 2e7, 0.2, 0, 5], [55, 9e6, 0.5, 3, 1], [30, 3e7, 0.1, 0, 8]]


class Clients:
    """``n`` threads posting predictions until stopped; every non-200 is a failure."""

    def __init__(self, url: str, n: int) -> None:
        self.url, self.sent, self.failures = url, 0, []  # type: ignore[var-annotated]
        self._stop, self._lock = threading.Event(), threading.Lock()
        self._threads = [threading.Thread(target=self._run) for _ in range(n)]

    def _run(self) -> None:
        with httpx.Client(timeout=60) as c:
            while not self._stop.is_set():
                try:
                    r = c.post(f"{self.url}/v1/models/credit-risk:predict", json={"instances": ROW})
                    bad = None if r.status_code == 200 else f"{r.status_code} {r.text[:200]}"
                except httpx.HTTPError as exc:
                    bad = repr(exc)
                with self._lock:
                    self.sent += 1
                    if bad:
                        self.failures.append(bad)

    def __enter__(self) -> Clients:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    tmp = tmp_path_factory.mktemp("canary")
    cfg, _, model = setup_model(tmp, "credit-risk")
    reg = Registry(cfg.registry)
    good = reg.log_and_register(
        cfg.model_dir / "model.json", {}, {"lime_fidelity_r2_mean": 0.9}, [], {"data_md5": "v2"}
    )
    reg.set_alias("credit-risk", CHALLENGER, good.version, "test challenger")
    ports = ("router_port", "router_admin_port", "stable_port", "canary_port")
    ports += ("transformer_port", "explainer_port")
    cfg = cfg.with_overrides(
        serve={p: free_port() for p in ports},
        rollout={"min_requests": 60, "max_step_seconds": 60, "max_p95_latency_ratio": 5.0},
    )
    path = write_config(cfg, tmp / "canary.yaml")
    broken = free_port()  # the broken challenger's predictor, started by a test
    stack = LocalStack(
        cfg,
        path,
        canary=True,
        log_dir=tmp / "logs",
        versions=("1", good.version),
        upstreams=(f"http://127.0.0.1:{broken}",),
    )
    with stack:
        yield {
            "cfg": cfg,
            "reg": reg,
            "model": model,
            "tmp": tmp,
            "path": path,
            "router": stack.url(cfg.serve.router_port),
            "admin": LocalRouterBackend(stack.admin_url(), token=stack.tokens.admin),
            "broken_port": broken,
            "good": good.version,
        }


def controller(world: dict) -> RolloutController:
    return RolloutController(
        world["admin"],
        world["cfg"].rollout,
        world["reg"],
        "credit-risk",
        poll_seconds=0.1,
        progress=lambda _line: None,
    )


def test_load_four_clients_no_errors_no_missing_payload_rows(world: dict) -> None:
    store = PayloadStore(world["cfg"].serve.payload_store)
    before = store.count()
    with Clients(world["router"], 4) as clients:
        time.sleep(10)
    assert clients.failures == [] and clients.sent > 100
    assert store.count() - before == clients.sent


def test_good_challenger_is_promoted_with_zero_failed_requests(world: dict) -> None:
    with Clients(world["router"], 2) as clients:
        result = controller(world).run()
    assert result.outcome == "promoted", result.reason
    assert clients.failures == []
    champion = world["reg"].by_alias("credit-risk", CHAMPION)
    assert champion.version == world["good"] and "champion.set_at" in champion.tags
    r = httpx.post(f"{world['router']}/v1/models/credit-risk:predict", json={"instances": ROW})
    assert r.headers["x-model-version"] == world["good"]


def test_broken_challenger_is_rolled_back_with_zero_failed_requests(world: dict) -> None:
    """A challenger whose weights were corrupted (predictions pushed to ~1) must not ship."""
    reg, tmp = world["reg"], world["tmp"]
    good = world["model"]
    broken = dataclasses.replace(good, bias=good.bias + 8.0)
    path = broken.save(tmp / "broken" / "model.json")
    version = reg.log_and_register(path, {}, {"lime_fidelity_r2_mean": 0.9}, [], {"data_md5": "x"})
    reg.set_alias("credit-risk", CHALLENGER, version.version, "deliberately broken")
    port = world["broken_port"]
    proc = start(
        "predictor",
        ["--config", str(world["path"]), "--model_name", "credit-risk", "--alias", "challenger"],
        port,
        tmp / "broken.log",
    )
    try:
        world["admin"].attach(f"http://127.0.0.1:{port}", version.version)
        with Clients(world["router"], 2) as clients:
            result = controller(world).run()
    finally:
        proc.terminate()
        proc.wait(20)
    assert result.outcome == "rolled_back", result.reason
    assert "prediction_shift" in result.reason
    assert clients.failures == []
    tags = reg.version("credit-risk", version.version).tags
    assert "prediction_shift" in tags["rollback.reason"]
    assert reg.by_alias("credit-risk", CHAMPION).version == world["good"]
    probs = np.asarray(
        httpx.post(
            f"{world['router']}/v1/models/credit-risk:predict", json={"instances": ROW}
        ).json()["predictions"]
    )
    np.testing.assert_allclose(probs, good.predict(good.frame(ROW)), rtol=1e-12)
