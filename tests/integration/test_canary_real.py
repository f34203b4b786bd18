"""Canary rollouts with the real servers: KServe predictors pinned to registry versions behind
the router, the rollout controller and a real MLflow registry, under load.

Three predictor processes serve v1 (the champion, trained by the project's train code), v2
(retrained by the same code on a new sample of the world) and v3 (v1 with corrupted weights).
Each test first puts the router back to "v1 stable, no canary" and the registry to "champion
v1, no challenger", so it passes alone and in any order. Who answered is read from the
predictors themselves (their own request counters on ``/metrics``, the ``model_version`` of the
answer body), never from the router's routing or accounting code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from tests.support.canary_traffic import Clients, Gate, Row, served_count, serving, traffic_rows
from tests.support.servers import free_port, setup_model, write_config

from mlplatform.config import PlatformConfig
from mlplatform.core.model import LinearModel
from mlplatform.registry.mlflow_registry import CHALLENGER, CHAMPION, Registry
from mlplatform.serving.payloads import PayloadStore
from mlplatform.serving.rollout import RolloutController, RolloutResult
from mlplatform.serving.stack import LocalStack, Service
from mlplatform.serving.traffic import LocalRouterBackend
from mlplatform.stages import generate_data, train_job

pytestmark = pytest.mark.slow
MODEL = "credit-risk"
AFTER = 300  # requests sent after a switch, to show the retired variant gets none


@dataclass
class World:
    cfg: PlatformConfig
    reg: Registry
    router: str
    admin: LocalRouterBackend
    admin_token: str
    urls: dict[str, str]  # registry version → the URL of the predictor serving it
    models: dict[str, LinearModel]  # registry version → the model, predicted here
    retrained: str  # registry version of the retrained challenger
    broken: str  # registry version of the corrupted challenger
    rows: list[Row]  # distinct client rows
    gate: Gate  # in front of any predictor (``gate.target``), at ``gate_url``
    gate_url: str


def retrain(cfg: PlatformConfig, tmp: Path) -> LinearModel:
    """The challenger: the project's train code on a new sample of the world (another seed)."""
    new = cfg.with_overrides(
        artifacts_dir=str(tmp / "retrained"),  # type: ignore[arg-type]
        data={"seed": cfg.data.seed + 1, "data_dir": str(tmp / "retrained-data")},
    )
    return LinearModel.load(train_job(new, generate_data(new)).files["model"])


def register(reg: Registry, model: LinearModel, folder: Path, md5: str) -> str:
    path = model.save(folder / "model.json")
    fidelity = {"lime_fidelity_r2_mean": 0.9}
    return reg.log_and_register(path, {}, fidelity, [], {"data_md5": md5}).version


def predictor(cfg_path: Path, version: str, port: int) -> Service:
    """A KServe predictor pinned to ``version`` (the chart's way; no alias to follow)."""
    args = ("--config", str(cfg_path), "--model_name", MODEL, "--model_version", version)
    return Service(
        f"v{version}", port, ("mlplatform.serving", "predictor", *args, "--http_port", str(port))
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("canary")
    cfg, _, champion = setup_model(tmp, MODEL)
    reg = Registry(cfg.registry)
    retrained = retrain(cfg, tmp)
    broken = dataclasses.replace(champion, bias=champion.bias + 8.0)  # predictions pushed to ~1
    v2 = register(reg, retrained, tmp / "v2", "retrained")
    v3 = register(reg, broken, tmp / "v3", "corrupted")
    ports = ("router_port", "router_admin_port", "stable_port", "canary_port")
    cfg = cfg.with_overrides(
        serve={p: free_port() for p in (*ports, "transformer_port", "explainer_port")},
        rollout={"min_requests": 60, "max_step_seconds": 60, "max_p95_latency_ratio": 5.0},
    )
    path = write_config(cfg, tmp / "canary.yaml")
    port = {"1": cfg.serve.stable_port, v2: cfg.serve.canary_port, v3: free_port()}
    urls = {v: f"http://127.0.0.1:{p}" for v, p in port.items()}
    gate_port = free_port()
    gate_url = f"http://127.0.0.1:{gate_port}"
    extra = (urls[v3], gate_url)  # predictors the admin API may attach besides v1 and v2
    stack = LocalStack(
        cfg, path, canary=False, log_dir=tmp / "logs", versions=("1", None), upstreams=extra
    )
    stack.log_dir.mkdir(parents=True)
    gate = Gate()
    try:
        for version, p in port.items():
            stack.add(predictor(path, version, p))
        stack.add(next(s for s in stack.services() if s.name == "router"))
        with serving(gate.app(), gate_port):
            yield World(
                cfg,
                reg,
                stack.url(cfg.serve.router_port),
                LocalRouterBackend(stack.admin_url(), token=stack.tokens.admin),
                stack.tokens.admin,
                urls,
                {"1": champion, v2: retrained, v3: broken},
                v2,
                v3,
                traffic_rows(cfg, 600, seed=1234),
                gate,
                gate_url,
            )
    finally:
        stack.stop()


@pytest.fixture()
def fresh(world: World) -> World:
    """v1 stable with no canary (whatever the last test left), champion v1, no challenger."""
    world.gate.release()
    world.admin.attach(world.urls["1"], "1")
    world.admin.promote()
    world.reg.set_alias(MODEL, CHAMPION, "1", "test reset")
    world.reg.delete_alias(MODEL, CHALLENGER)
    return world


def served(w: World) -> dict[str, int]:
    """Predictions each predictor process says it has served so far, by registry version."""
    return {v: served_count(url, MODEL) for v, url in w.urls.items()}


def roll_out(w: World, version: str) -> tuple[RolloutResult, Clients]:
    """Make ``version`` the challenger, attach its predictor, run the controller under load."""
    w.reg.set_alias(MODEL, CHALLENGER, version, "test challenger")
    w.admin.attach(w.urls[version], version)
    ctl = RolloutController(
        w.admin, w.cfg.rollout, w.reg, MODEL, poll_seconds=0.1, progress=lambda _line: None
    )
    with Clients(w.router, 2, w.rows) as clients:
        result = ctl.run()
    return result, clients


def predict(client: httpx.Client, w: World, rows: list[Row]) -> dict[str, Any]:
    r = client.post(f"{w.router}/v1/models/{MODEL}:predict", json={"instances": rows})
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    return doc


def assert_only(w: World, version: str, n: int = AFTER) -> None:
    """``n`` requests of distinct rows are all answered by ``version``'s predictor: its own
    counter grows by n, every other predictor's stays put, and each answer is its prediction."""
    before = served(w)
    model = w.models[version]
    with httpx.Client(timeout=60) as c:
        for i in range(n):
            rows = [w.rows[(2 * i) % len(w.rows)], w.rows[(2 * i + 1) % len(w.rows)]]
            doc = predict(c, w, rows)
            assert doc["model_version"] == version, (i, doc)
            np.testing.assert_allclose(doc["predictions"], model.predict(model.frame(rows)))
    grown = {v: count - before[v] for v, count in served(w).items()}
    assert grown == {v: n if v == version else 0 for v in grown}, grown


def test_load_four_clients_no_errors_no_missing_payload_rows(fresh: World) -> None:
    """4 clients through a 10 % canary: no error, one payload row per request, and each
    request answered by exactly one predictor (the servers' own counts add up to it)."""
    w, v2 = fresh, fresh.retrained
    w.admin.attach(w.urls[v2], v2, percent=w.cfg.serve.canary_percent)
    with contextlib.closing(PayloadStore(w.cfg.serve.payload_store)) as store:
        before, counts = store.count(), served(w)
        with Clients(w.router, 4, w.rows, target=400) as clients:
            assert clients.reached.wait(120), clients.sent
        grown = {v: count - counts[v] for v, count in served(w).items()}
        assert clients.failures == []
        assert store.count() - before == clients.sent
    assert grown == {"1": clients.versions["1"], v2: clients.versions[v2], w.broken: 0}
    assert sum(clients.versions.values()) == clients.sent and grown["1"] > grown[v2] > 0


def test_retrained_challenger_is_promoted_and_old_champion_then_gets_nothing(
    fresh: World,
) -> None:
    """A model retrained by the project's code on a new sample passes every default check
    (prediction shift included) under many distinct rows; afterwards v1 serves nothing."""
    w = fresh
    v1, v2 = w.models["1"], w.models[w.retrained]
    probe = v1.frame(w.rows)
    assert np.abs(v2.predict(probe) - v1.predict(probe)).max() > 0.02  # a genuinely new model
    result, clients = roll_out(w, w.retrained)
    assert result.outcome == "promoted", result.reason
    assert [i for i, d in result.decisions if d.action != "wait"] == [0, 1, 2]
    assert clients.failures == [] and set(clients.versions) == {"1", w.retrained}
    champion = w.reg.by_alias(MODEL, CHAMPION)
    assert champion is not None and champion.version == w.retrained
    assert "champion.set_at" in champion.tags
    assert w.reg.by_alias(MODEL, CHALLENGER) is None
    assert_only(w, w.retrained)


def test_broken_challenger_is_rolled_back_and_then_gets_nothing(fresh: World) -> None:
    """A challenger whose weights were corrupted (predictions pushed to ~1) must not ship:
    rolled back at the first step with zero failed requests, and then served nothing."""
    w = fresh
    result, clients = roll_out(w, w.broken)
    assert result.outcome == "rolled_back", result.reason
    assert "prediction_shift" in result.reason and "step 1/3" in result.reason
    assert clients.failures == [] and clients.versions.get(w.broken, 0) > 0
    tags = w.reg.version(MODEL, w.broken).tags
    assert "prediction_shift" in tags["rollback.reason"]
    champion = w.reg.by_alias(MODEL, CHAMPION)
    assert champion is not None and champion.version == "1"
    assert w.reg.by_alias(MODEL, CHALLENGER) is None
    assert_only(w, "1")


def retire_behind_gate(w: World, switch: str) -> tuple[str, str]:
    """Route so that ``switch`` retires a predictor reached through the gate: (the retired
    version, the version that takes all traffic)."""
    if switch == "rollback":  # the canary (v2 behind the gate) takes 100 %, then goes
        w.gate.target = w.urls[w.retrained]
        w.admin.attach(w.gate_url, w.retrained, percent=100)
        return w.retrained, "1"
    w.gate.target = w.urls["1"]  # the stable (v1 behind the gate) goes, v2 is promoted
    w.admin.attach(w.gate_url, "1")
    w.admin.promote()
    w.admin.attach(w.urls[w.retrained], w.retrained)
    return "1", w.retrained


def answered_by(w: World, row: Row) -> str:
    with httpx.Client(timeout=60) as c:
        return str(predict(c, w, [row])["model_version"])


def switch_traffic(w: World, switch: str) -> int:
    """Promote or roll back (on a client of its own); the requests still held at the gate
    when that call returns."""
    with httpx.Client(timeout=60) as client:
        getattr(LocalRouterBackend(w.admin.url, client, w.admin_token), switch)()
    return w.gate.outstanding


def wait_until_detached(w: World) -> None:
    """Poll (under a deadline) until the router no longer has the v2 canary attached."""
    deadline = time.monotonic() + 30
    while w.admin.serves(w.retrained):
        assert time.monotonic() < deadline, "the router never switched"
        time.sleep(0.01)


@pytest.mark.parametrize("switch", ["rollback", "promote"])
def test_switch_is_atomic_and_drains_the_retired_variant(fresh: World, switch: str) -> None:
    """README: "Traffic switches atomically and the retired variant is drained first".

    Requests held in flight to the variant being retired (at the gate) keep it busy: the
    switch sends every new request to the other variant at once, yet promote/rollback returns
    only once the held requests are answered, each by the retired variant, exactly once."""
    w, held, new_requests = fresh, 8, 40
    old, new = retire_behind_gate(w, switch)
    before, first = served(w), w.gate.arrived
    w.gate.hold()
    with ThreadPoolExecutor(held + 1) as pool:
        try:
            in_flight = [pool.submit(answered_by, w, row) for row in w.rows[:held]]
            w.gate.wait_arrived(first + held)
            switched = pool.submit(switch_traffic, w, switch)
            wait_until_detached(w)
            during = [answered_by(w, row) for row in w.rows[held : held + new_requests]]
            assert during == [new] * new_requests  # the switch is immediate
            with pytest.raises(TimeoutError):  # ... but the call waits for the drain
                switched.result(timeout=1.0)
        finally:
            w.gate.release()
        assert switched.result(60) == 0, "promote/rollback returned with requests in flight"
        assert [f.result(60) for f in in_flight] == [old] * held
    grown = {v: count - before[v] for v, count in served(w).items()}
    assert grown == {v: {old: held, new: new_requests}.get(v, 0) for v in grown}, grown
    assert w.gate.arrived - first == held
