"""Who may write ground truth and who may drive the router (issue 13, "Hardening"), against real
servers on loopback: the router's client and admin ports, the payload sink, and the router's
command starting both ports from the environment's tokens.

Feedback needs the feedback token (401), labels of the task (400), ids the router issued (404);
the first label wins (409 for another one, recorded in ``feedback_rejected``; the same label
again is a 200). The admin API is only on the admin port, behind the admin token, attaches only
known upstreams, and a variant pin needs the admin token."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
from tests.support.router import MODEL, ROOT, body, router_config, running, stand_in
from tests.support.services import store_backends, store_database

from mlplatform.config import ServeConfig
from mlplatform.serving import sink
from mlplatform.serving.payloads import PayloadStore
from mlplatform.serving.router import RouterSettings, create_admin_app, create_app
from mlplatform.serving.stack import free_port
from mlplatform.serving.tokens import ADMIN_TOKEN_ENV, FEEDBACK_TOKEN_ENV
from mlplatform.stores.schema import feedback_rejected

pytestmark = pytest.mark.slow
FEEDBACK = {"Authorization": "Bearer fb-secret"}
ADMIN = {"Authorization": "Bearer adm-secret"}
TOKENS = {"feedback_token": "fb-secret", "admin_token": "adm-secret"}
ADMIN_ROUTES = [
    ("GET", "/admin/stats"),
    ("PUT", "/admin/traffic"),
    ("PUT", "/admin/canary"),
    ("POST", "/admin/promote"),
    ("POST", "/admin/rollback"),
]


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[str, str]]:
    with running(stand_in(1.0, version="1")) as stable, running(stand_in(2.0, version="2")) as can:
        yield stable, can


@pytest.fixture(params=store_backends())
def served(
    request: pytest.FixtureRequest, tmp_path: Path, upstreams: tuple[str, str]
) -> Iterator[dict[str, Any]]:
    """A regression router (stable + canary at 50 %) with both tokens, on both store backends."""
    with store_database(request.param, tmp_path, "payloads.db") as store_url:
        cfg = router_config(tmp_path, canary_percent=50).with_overrides(
            serve={"payload_store": store_url}
        )
        settings = RouterSettings(*upstreams, stable_version="1", canary_version="2", **TOKENS)
        app = create_app(cfg, settings)
        with running(app) as url, running(create_admin_app(app.state.router)) as admin:
            yield {"url": url, "admin": admin, "router": app.state.router, "up": upstreams}


def predict(url: str, headers: dict[str, str] | None = None, n: int = 1) -> httpx.Response:
    return httpx.post(f"{url}/v1/models/{MODEL}:predict", json=body(n), headers=headers)


def post_label(url: str, rid: str, label: Any, headers: dict[str, str] | None = None) -> Any:
    doc = {"request_id": rid, "label": label}
    return httpx.post(
        f"{url}/v1/feedback", json=doc, headers=FEEDBACK if headers is None else headers
    )


def labels(store: PayloadStore) -> list[float | None]:
    """What the monitor reads: the label of each (one-instance) request, oldest first."""
    w = store.numeric_window(0, time.time() + 1, MODEL)
    return [None if math.isnan(x) else float(x) for x in w["label"]]


def rejected(store: PayloadStore) -> list[tuple[str, str, str]]:
    query = sa.select(feedback_rejected.c["request_id", "label", "kept_label", "ts"])
    with store.engine.connect() as conn:
        rows = list(conn.execute(query.order_by(feedback_rejected.c.id)))
    assert all(r.ts > 0 for r in rows)
    return [(r.request_id, r.label, r.kept_label) for r in rows]


# -- feedback --------------------------------------------------------------------------------
def test_feedback_without_the_feedback_token_is_401_and_stores_nothing(
    served: dict[str, Any],
) -> None:
    url, store = served["url"], served["router"].store
    rid = predict(url).headers["x-request-id"]
    for headers, reason in [
        ({}, "Authorization: Bearer <token>"),
        ({"Authorization": "Bearer nope"}, "wrong token"),
        (ADMIN, "wrong token"),  # the admin token is not the feedback token
        ({"Authorization": "Basic fb-secret"}, "Authorization: Bearer <token>"),
    ]:
        r = post_label(url, rid, 1.0, headers)
        assert r.status_code == 401, (headers, r.text)
        assert reason in r.json()["error"] and r.headers["www-authenticate"] == "Bearer"
    assert store.requests(0, time.time() + 1)["label"].tolist() == [None]
    assert post_label(url, rid, 1.0).json() == {"accepted": 1, "stored": 1}


def test_labels_must_fit_the_task(served: dict[str, Any], tmp_path: Path) -> None:
    url, store = served["url"], served["router"].store
    rid = predict(url, n=2).headers["x-request-id"]
    for label in ["3.5", True, None, [], [1.0, "x"], [[1.0]], {"y": 1}]:
        r = post_label(url, rid, label)
        assert r.status_code == 400, (label, r.text)
        assert f"label of {rid!r}" in r.json()["error"]
    assert store.requests(0, time.time() + 1)["label"].tolist() == [None]
    assert post_label(url, rid, [3.5, -2]).status_code == 200  # regression: any finite numbers
    cfg = router_config(tmp_path / "clf").with_overrides(
        task="classification", train={"loss": "logistic"}
    )
    app = create_app(cfg, RouterSettings(served["up"][0], **TOKENS))
    with running(app) as clf:
        rid = predict(clf).headers["x-request-id"]
        for label in [2, 0.5, -1, [1, 3]]:
            r = post_label(clf, rid, label)
            assert r.status_code == 400 and "0 or 1" in r.json()["error"], (label, r.text)
        assert post_label(clf, rid, 1.0).status_code == 200
        assert app.state.router.store.requests(0, time.time() + 1)["label"].tolist() == [1]


def test_only_ids_the_router_issued_take_feedback(served: dict[str, Any]) -> None:
    url = served["url"]
    mine = predict(url, {"x-request-id": "client-chosen"})
    assert mine.status_code == 200 and mine.headers["x-request-id"] != "client-chosen"
    r = post_label(url, "client-chosen", 1.0)
    assert r.status_code == 404 and r.json()["unknown"] == ["client-chosen"]
    assert post_label(url, mine.headers["x-request-id"], 1.0).status_code == 200


def test_the_first_label_wins_and_a_conflict_is_a_409_on_record(served: dict[str, Any]) -> None:
    url, store = served["url"], served["router"].store
    a, b = (predict(url).headers["x-request-id"] for _ in range(2))
    assert post_label(url, a, 1.0).json() == {"accepted": 1, "stored": 1}
    flipped = post_label(url, a, 0.0)
    assert flipped.status_code == 409, flipped.text
    assert flipped.json()["conflicts"] == [a] and "first label wins" in flipped.json()["error"]
    again = post_label(url, a, 1)  # the same label (as an int): idempotent
    assert again.status_code == 200 and again.json() == {"accepted": 1, "stored": 0}
    batch = [{"request_id": b, "label": 5.0}, {"request_id": a, "label": 7.0}]
    r = httpx.post(f"{url}/v1/feedback", json=batch, headers=FEEDBACK)
    assert r.status_code == 409 and r.json()["conflicts"] == [a]  # b is not stored either
    assert labels(store) == [1.0, None]  # a, b
    assert rejected(store) == [(a, "0.0", "1.0"), (a, "7.0", "1.0")]
    assert post_label(url, b, 5.0).status_code == 200
    assert labels(store) == [1.0, 5.0]
    stats = httpx.get(f"{served['admin']}/admin/stats", headers=ADMIN).json()
    assert stats["stable"]["labelled"] + stats["canary"]["labelled"] == 2  # a, b: once each


def test_a_batch_naming_one_request_twice_with_two_labels_is_a_400(
    served: dict[str, Any],
) -> None:
    url = served["url"]
    rid = predict(url).headers["x-request-id"]
    batch = [{"request_id": rid, "label": 1.0}, {"request_id": rid, "label": 2.0}]
    r = httpx.post(f"{url}/v1/feedback", json=batch, headers=FEEDBACK)
    assert r.status_code == 400 and "two different labels" in r.json()["error"]
    assert rejected(served["router"].store) == []


# -- admin -----------------------------------------------------------------------------------
def test_admin_routes_are_not_on_the_client_port(served: dict[str, Any]) -> None:
    url = served["url"]
    for method, path in [*ADMIN_ROUTES, ("GET", "/metrics")]:
        r = httpx.request(method, url + path, json={"canary_percent": 0}, headers=ADMIN)
        assert r.status_code == 404, (method, path)
    assert served["router"].routing.canary_percent == 50
    assert httpx.get(f"{served['admin']}/metrics").status_code == 200  # here instead


def test_the_admin_api_needs_the_admin_token(served: dict[str, Any]) -> None:
    admin, router = served["admin"], served["router"]
    for headers in [{}, {"Authorization": "Bearer wrong"}, FEEDBACK]:
        for method, path in ADMIN_ROUTES:
            r = httpx.request(method, admin + path, json={"canary_percent": 0}, headers=headers)
            assert r.status_code == 401, (method, path, headers)
            assert "admin API" in r.json()["error"] and r.headers["www-authenticate"] == "Bearer"
    assert router.routing.canary_percent == 50 and router.routing.canary is not None
    ok = httpx.put(f"{admin}/admin/traffic", json={"canary_percent": 0}, headers=ADMIN)
    assert ok.status_code == 200 and router.routing.canary_percent == 0


def test_the_canary_is_attached_only_from_known_upstreams(served: dict[str, Any]) -> None:
    admin, router, (_, canary) = served["admin"], served["router"], served["up"]
    attack = {"url": "http://attacker.example:9999", "version": "6", "canary_percent": 100}
    r = httpx.put(f"{admin}/admin/canary", json=attack, headers=ADMIN)
    assert r.status_code == 400 and "not a known upstream" in r.json()["error"]
    assert router.routing.canary.url == canary and router.routing.canary_percent == 50
    versions = {predict(served["url"]).headers["x-model-version"] for _ in range(20)}
    assert versions == {"1", "2"}  # still stable and canary, nothing else
    known = {"url": canary.upper() + "/", "version": "2", "canary_percent": 100}
    assert httpx.put(f"{admin}/admin/canary", json=known, headers=ADMIN).status_code == 200
    assert predict(served["url"]).headers["x-model-version"] == "2"


def test_a_variant_pin_needs_the_admin_token(served: dict[str, Any]) -> None:
    url, store = served["url"], served["router"].store
    for headers in [{}, FEEDBACK]:
        r = predict(url, {"x-mlplatform-variant": "canary", **headers})
        assert r.status_code == 401 and "pinning a variant" in r.json()["error"]
        assert "x-mlplatform-variant" not in r.headers
    logged = store.requests(0, time.time() + 1)
    assert logged["status"].tolist() == [401, 401] and logged["variant"].isna().all()
    pinned = [predict(url, {"x-mlplatform-variant": "canary", **ADMIN}) for _ in range(10)]
    assert {(p.status_code, p.headers["x-model-version"]) for p in pinned} == {(200, "2")}


# -- the payload sink ------------------------------------------------------------------------
def event(kind: str, rid: str, doc: dict[str, Any]) -> dict[str, Any]:
    headers = {
        "ce-id": rid,
        "ce-type": f"org.kubeflow.serving.inference.{kind}",
        "ce-specversion": "1.0",
        "ce-inferenceservicename": MODEL,
        "content-type": "application/json",
    }
    return {"headers": headers, "content": orjson.dumps(doc)}


def test_the_sink_takes_feedback_by_the_same_rules(tmp_path: Path) -> None:
    serve = ServeConfig(payload_store=f"sqlite:///{tmp_path}/sink.db")
    app = sink.create_app(serve, task="classification", feedback_token="fb-secret")
    with running(app) as url, httpx.Client(base_url=url) as c:
        for rid in ("a", "b"):
            assert c.post("/", **event("request", rid, {"instances": [[1.0]]})).status_code == 200
            assert c.post("/", **event("response", rid, {"predictions": [0.7]})).status_code == 200
        assert post_label(url, "a", 1, {}).status_code == 401
        assert post_label(url, "a", 1, {"Authorization": "Bearer x"}).status_code == 401
        assert post_label(url, "a", 3).status_code == 400
        assert post_label(url, "zz", 1).json()["unknown"] == ["zz"]
        assert post_label(url, "a", 1).json() == {"accepted": 1, "stored": 1}
        assert post_label(url, "a", 1.0).json() == {"accepted": 1, "stored": 0}
        assert post_label(url, "a", 0).status_code == 409
    with PayloadStore(tmp_path / "sink.db") as store:
        assert labels(store) == [1.0, None]  # a, b
        assert rejected(store) == [("a", "0", "1")]
    closed = sink.create_app(serve, task="classification", feedback_token=None)
    with running(closed) as url:
        r = post_label(url, "b", 1)
        assert r.status_code == 401 and "closed" in r.json()["error"]


# -- the router's command: two ports, tokens from the environment ------------------------------
def test_the_router_command_serves_admin_on_its_own_loopback_port(
    tmp_path: Path, upstreams: tuple[str, str]
) -> None:
    config = tmp_path / "router.yaml"
    config.write_text(router_config(tmp_path).to_json(), encoding="utf-8")
    port, admin_port = free_port(), free_port()
    flags = ["--config", str(config), "--stable-url", upstreams[0], "--port", str(port)]
    env = {**os.environ, ADMIN_TOKEN_ENV: "adm-secret", FEEDBACK_TOKEN_ENV: "fb-secret"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlplatform.serving",
            "router",
            *flags,
            "--admin-port",
            str(admin_port),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    client, admin = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}"
    try:
        deadline = time.monotonic() + 30
        while not _up(admin + "/healthz") or not _up(client + "/healthz"):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout
            time.sleep(0.2)
        assert httpx.get(f"{client}/admin/stats", headers=ADMIN).status_code == 404
        assert httpx.get(f"{admin}/admin/stats").status_code == 401
        assert httpx.get(f"{admin}/admin/stats", headers=ADMIN).json()["canary"] is None
        rid = predict(client).headers["x-request-id"]
        assert post_label(client, rid, 2.5).status_code == 200  # the environment's token
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert not _up(admin + "/healthz") and not _up(client + "/healthz"), out


def _up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.services
def test_two_writers_racing_on_postgresql_store_one_first_label(tmp_path: Path) -> None:
    """Two sink replicas (two stores, two writer threads) label the same requests at once with
    different labels: each request keeps exactly one label; the other is a 409 on record."""
    from concurrent.futures import ThreadPoolExecutor

    from mlplatform.errors import LabelConflictError
    from mlplatform.serving.payloads import PayloadRecord

    ids = [f"r{i}" for i in range(40)]
    with store_database("postgresql", tmp_path) as url, PayloadStore(url) as one:
        for rid in ids:
            one.log(
                PayloadRecord(
                    rid, time.time(), MODEL, "stable", "1", "predict", 200, 1.0, 1, None, None
                )
            )
        with PayloadStore(url) as two:

            def label(store: PayloadStore, value: float) -> int:
                conflicts = 0
                for rid in ids:
                    try:
                        store.accept_feedback([(rid, value)])
                    except LabelConflictError:
                        conflicts += 1
                return conflicts

            with ThreadPoolExecutor(2) as pool:
                lost = sum(pool.map(label, (one, two), (1.0, 2.0)))
        with one.engine.connect() as conn:
            stored = conn.execute(sa.text("SELECT request_id, count(*) FROM feedback GROUP BY 1"))
            counts = dict(list(stored))
        assert len(rejected(one)) == len(ids)
    assert lost == len(ids) and counts == dict.fromkeys(ids, 1)


def test_local_tokens_are_generated_once_private_and_yield_to_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlplatform.serving.tokens import local_tokens

    monkeypatch.delenv(FEEDBACK_TOKEN_ENV, raising=False)
    monkeypatch.delenv(ADMIN_TOKEN_ENV, raising=False)
    first = local_tokens(tmp_path / "artifacts")
    assert first == local_tokens(tmp_path / "artifacts") and first.feedback != first.admin
    assert len(first.feedback) >= 40
    assert (tmp_path / "artifacts" / "tokens.json").stat().st_mode & 0o777 == 0o600
    monkeypatch.setenv(ADMIN_TOKEN_ENV, "from-env")
    assert local_tokens(tmp_path / "artifacts").admin == "from-env"
