"""Rehearsal, serving: the rendered InferenceService on the EMULATED KServe v0.20 data plane.

The platform as `make deploy SERVING=false` leaves it (tests/support/rehearsal, as in
test_rehearsal_platform.py), then what the README's walk-through does next: register
house-price versions in the rehearsal's MLflow (through a port-forward, as a laptop would),
render the chart with serving on for the champion's version and apply its InferenceService
through the emulated controller (tests/support/rehearsal/kserve.py): the predictor,
transformer and explainer run as real pods with their rendered commands, behind a Kourier-like
ingress and, for the predictor, KServe's logger agent posting to the real payload sink.

The oracles are independent of the emulation: the model file the registry got, the pods'
/proc/<pid>/cmdline, their readiness endpoints, and the sink's rows read from PostgreSQL.
"""

from __future__ import annotations

import json
import math
import socket
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import pandas as pd
import pytest
from tests.support.chart import helm, load_all, template_args
from tests.support.mlflow_server import register_version
from tests.support.rehearsal.ingress import Ingress
from tests.support.rehearsal.kserve import KServeController
from tests.support.rehearsal.pods import Pod, ServicePort
from tests.support.rehearsal.world import World, deployed_platform
from tests.support.services import POSTGRES_URL, need

from mlplatform.config import load_config
from mlplatform.core.model import LinearModel

pytestmark = [pytest.mark.services, pytest.mark.slow]
NAMESPACE = "mlplatform"
MODEL = "house-price"
TOP = f"{MODEL}.{NAMESPACE}.svc.cluster.local"  # what a client in the cluster calls
PREDICTOR = f"{MODEL}-predictor.{NAMESPACE}"


@dataclass
class Serving:
    world: World
    run: str
    controller: KServeController
    ingress: Ingress
    models: dict[str, LinearModel]  # registry version → the model file it was registered with
    rows: pd.DataFrame  # feature rows from the training split

    def render(self, version: str, *sets: str) -> dict[str, Any]:
        """The chart's InferenceService for ``MODEL`` as `make deploy` renders it."""
        args = template_args(
            "values-kind.yaml",
            *platform_sets(self.run),
            *sets,
            "serving.enabled=true",
            f"models.{MODEL}.modelVersion={version}",
        )
        docs = load_all(helm(*args).stdout)
        (isvc,) = [
            d for d in docs if d["kind"] == "InferenceService" and d["metadata"]["name"] == MODEL
        ]
        return isvc

    def served_version(self) -> str:
        labels = self.controller.get(MODEL)["spec"]["predictor"]["labels"]
        return str(labels["endpoint"]).removeprefix("v")

    def post(self, host: str, path: str, body: dict[str, Any]) -> httpx.Response:
        url = f"http://{self.ingress.ip}{path}"
        return httpx.post(url, json=body, headers={"Host": host}, timeout=120)


def platform_sets(run: str) -> tuple[str, ...]:
    return (f"postgresql.database=mlflow_{run}", f"stores.database=mlplatform_{run}")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, str]]:
    need(POSTGRES_URL, 5432, "PostgreSQL")
    with deployed_platform(
        tmp_path_factory.mktemp("rehearsal-kserve"), NAMESPACE, POSTGRES_URL
    ) as deployed:
        yield deployed


def port_forward(world: World, service: str, port: int) -> str:
    """EMULATED ``kubectl port-forward svc/<service> <port>``: a local port to the Service
    (MLflow's --allowed-hosts accepts 127.0.0.1, not a Service address)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        local = s.getsockname()[1]
    target = world.dns.names(NAMESPACE)[service]
    world.proxy.add(ServicePort("127.0.0.1", local, port, [target]))
    return f"http://127.0.0.1:{local}"


@pytest.fixture(scope="module")
def serving(
    world: tuple[World, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Serving]:
    w, run = world
    tmp = tmp_path_factory.mktemp("registered")
    tracking = port_forward(w, "mlplatform-mlflow", 5000)
    models, rows = {}, pd.DataFrame()
    for i in (1, 2):  # the first becomes champion (and challenger), the second challenger
        cfg = load_config("configs/house-price.yaml", env={}).with_overrides(
            artifacts_dir=str(tmp / f"v{i}" / "artifacts"),  # type: ignore[arg-type]
            data={"rows": 1000, "seed": 100 + i, "data_dir": str(tmp / f"v{i}" / "data")},
            train={"epochs": 200},
            explain={"background_rows": 200},
            registry={"tracking_uri": tracking, "artifact_root": "mlflow-artifacts:/mlplatform"},
        )
        (tmp / f"v{i}").mkdir()
        version, model_file, rows = register_version(cfg, tmp / f"v{i}")
        models[version] = LinearModel.load(Path(model_file))
    ingress = Ingress(w.dns)
    controller = KServeController(w, ingress)
    s = Serving(w, run, controller, ingress, models, rows[list(cfg.feature_names)])
    try:
        status = controller.apply(s.render(min(models, key=int)))["status"]
        assert {"type": "Ready", "status": "True"} in status["conditions"], status
        yield s
    finally:
        controller.stop()
        ingress.close()


def feature_rows(s: Serving, n: int, offset: int = 0) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(
        s.rows.iloc[offset : offset + n].to_json(orient="records")
    )
    return rows


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().rstrip("\0").split("\0")


# -- pods -------------------------------------------------------------------------------------
def live(serving: Serving, component: str) -> list[Pod]:
    """The pods of ``component`` whose process runs (a retired revision's are stopped)."""
    return [
        p
        for r in serving.controller.revisions(MODEL, component)
        for p in r.pods
        if p.process is not None and p.process.poll() is None
    ]


def test_every_component_pod_is_ready(serving: Serving) -> None:
    for component in ("predictor", "transformer", "explainer"):
        pods = live(serving, component)
        assert len(pods) == 1, component  # minReplicas: 1 in values-kind.yaml
        ready = httpx.get(f"http://{pods[0].ip}:8080/v2/health/ready", timeout=10)
        assert ready.status_code == 200, (component, ready.text)
    status = serving.controller.get(MODEL)["status"]
    predictor = status["components"]["predictor"]
    assert predictor["latestReadyRevision"] == predictor["latestCreatedRevision"]
    assert predictor["latestReadyRevision"].startswith(f"{MODEL}-predictor-000")


def test_transformer_and_explainer_run_with_the_arguments_kserve_injects(serving: Serving) -> None:
    """Rendered args, then --predictor_host (flags already there are not repeated), and the
    explainer's --http_port 8080 whatever it had (kserve v0.20.0 *_custom.go)."""
    base = ["python", "-m", "mlplatform.serving"]
    rendered = [
        "--config",
        f"/etc/mlplatform/{MODEL}.yaml",
        "--model_name",
        MODEL,
        "--http_port",
        "8080",
    ]
    expected = {
        "transformer": [*base, "transformer", *rendered, "--predictor_host", PREDICTOR],
        "explainer": [
            *base,
            "explainer",
            *rendered,
            "--predictor_host",
            PREDICTOR,
            "--http_port",
            "8080",
        ],
    }
    for component, argv in expected.items():
        (pod,) = live(serving, component)
        assert pod.process is not None
        assert cmdline(pod.process.pid) == argv


# -- traffic ----------------------------------------------------------------------------------
def test_a_predict_through_the_ingress_is_the_registered_models_prediction(
    serving: Serving,
) -> None:
    version = serving.served_version()
    rows = feature_rows(serving, 4)
    expected = serving.models[version].predict(pd.DataFrame(rows))
    for host in (TOP, PREDICTOR, f"{PREDICTOR}.svc.cluster.local"):
        r = serving.post(host, f"/v1/models/{MODEL}:predict", {"instances": rows})
        assert r.status_code == 200, (host, r.text)
        assert r.json()["model_version"] == version
        np.testing.assert_allclose(r.json()["predictions"], expected, rtol=1e-9)
    unknown = serving.post(f"{MODEL}-nothing.{NAMESPACE}", f"/v1/models/{MODEL}:predict", {})
    assert unknown.status_code == 404


def test_an_explain_through_the_ingress_reaches_the_explainer(serving: Serving) -> None:
    """The top-level name's `:explain` goes to the explainer, which asks the predictor back
    through --predictor_host: LIME's f(x) is the served model's prediction of the row."""
    rows = feature_rows(serving, 1, offset=10)
    expected = serving.models[serving.served_version()].predict(pd.DataFrame(rows))
    body = {"instances": rows, "explainers": ["lime"]}
    r = serving.post(TOP, f"/v1/models/{MODEL}:explain", body)
    assert r.status_code == 200, r.text
    (explanation,) = r.json()["explanations"]
    assert explanation["lime"]["model_prediction"] == pytest.approx(expected[0], rel=1e-9)
    assert {c["feature"] for c in explanation["lime"]["contributions"]} == set(rows[0])


def sink_rows(s: Serving) -> dict[str, tuple[str, str | None, str]]:
    """request_id → (variant, model_version, request body) of every logged house-price request."""
    import psycopg

    stores = s.world.secrets["mlplatform-stores"]
    server = urlsplit(POSTGRES_URL)
    with psycopg.connect(
        host=server.hostname,
        port=server.port or 5432,
        dbname=f"mlplatform_{s.run}",
        user=stores["username"],
        password=stores["password"],
    ) as conn:
        found = conn.execute(
            "SELECT request_id, variant, model_version, request FROM payloads WHERE model = %s",
            (MODEL,),
        ).fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in found}


def test_the_payload_log_holds_the_clients_requests_and_not_the_explainers(
    serving: Serving,
) -> None:
    version = serving.served_version()
    serving.ingress.drain()
    before = sink_rows(serving)
    sent = [feature_rows(serving, 2, offset=20 + 2 * i) for i in range(5)]
    for rows in sent:
        r = serving.post(TOP, f"/v1/models/{MODEL}:predict", {"instances": rows})
        assert r.status_code == 200, r.text
    agent = serving.ingress.agents[-1]
    events_before = agent.sent
    explained = serving.post(
        TOP,
        f"/v1/models/{MODEL}:explain",
        {"instances": feature_rows(serving, 1), "explainers": ["lime"]},
    )
    assert explained.status_code == 200, explained.text
    serving.ingress.drain()
    assert agent.sent > events_before, "the explainer's calls never reached the predictor's agent"
    new = {k: v for k, v in sink_rows(serving).items() if k not in before}
    assert len(new) == len(sent)
    assert {(variant, mv) for variant, mv, _ in new.values()} == {(f"v{version}", version)}
    logged = [row for _, _, body in new.values() for row in json.loads(body)["instances"]]
    assert sorted(map(canonical, logged)) == sorted(canonical(r) for rows in sent for r in rows)


def canonical(row: dict[str, Any]) -> str:
    """A row as comparable text (numbers rounded: JSON may print 3 as 3.0 on the way)."""
    return json.dumps(
        {k: round(float(v), 9) if isinstance(v, float | int) else v for k, v in row.items()},
        sort_keys=True,
    )


def test_an_event_id_is_the_clients_ce_id_or_a_new_uuid(serving: Serving) -> None:
    """pkg/logger/handler.go getOrCreateID: the request's Ce-Id header, else a UUID."""
    chosen = f"client-chosen-{uuid.uuid4().hex[:8]}"
    serving.ingress.drain()
    before = sink_rows(serving)
    path, rows = f"/v1/models/{MODEL}:predict", feature_rows(serving, 1, offset=30)
    for headers in ({"Ce-Id": chosen}, {}):
        r = httpx.post(
            f"http://{serving.ingress.ip}{path}",
            json={"instances": rows},
            headers={"Host": PREDICTOR, **headers},
            timeout=60,
        )
        assert r.status_code == 200, r.text
    serving.ingress.drain()
    new = set(sink_rows(serving)) - set(before)
    assert chosen in new and len(new) == 2
    (generated,) = new - {chosen}
    assert uuid.UUID(generated).version == 4


def binomial_bounds(n: int, p: float, alpha: float = 1e-6) -> tuple[int, int]:
    """The smallest interval [lo, hi] outside which Binomial(n, p) falls with probability
    below ``alpha`` (alpha/2 on each side)."""
    pmf = [math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)]
    cdf = np.cumsum(pmf)
    lo = int(np.searchsorted(cdf, alpha / 2))
    hi = int(np.searchsorted(cdf, 1 - alpha / 2))
    return lo, hi


def send(s: Serving, n: int) -> list[str]:
    """``n`` predicts to the predictor's name, 8 at a time; the versions that answered."""

    def one(i: int) -> str:
        body = {"instances": feature_rows(s, 1, i % 50)}
        r = s.post(PREDICTOR, f"/v1/models/{MODEL}:predict", body)
        assert r.status_code == 200, r.text
        return str(r.json()["model_version"])

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(n)))


def test_a_canary_gets_its_share_and_all_traffic_once_the_percent_is_removed(
    serving: Serving,
) -> None:
    stable = serving.served_version()
    (canary,) = set(serving.models) - {stable}
    old = serving.controller.get(MODEL)["status"]["components"]["predictor"]["latestReadyRevision"]
    status = serving.controller.apply(
        serving.render(canary, f"models.{MODEL}.canaryTrafficPercent=10")
    )["status"]
    predictor = status["components"]["predictor"]
    new = predictor["latestReadyRevision"]
    assert new != old and predictor["latestCreatedRevision"] == new
    assert predictor["latestRolledoutRevision"] == old
    assert [(t["revisionName"], t["percent"]) for t in predictor["traffic"]] == [
        (new, 10),
        (old, 90),
    ]
    serving.ingress.drain()
    before = sink_rows(serving)

    answered = Counter(send(serving, 300))
    lo, hi = binomial_bounds(300, 0.10)
    assert set(answered) == {stable, canary}
    assert lo <= answered[canary] <= hi, (answered, lo, hi)
    serving.ingress.drain()
    logged = [(v, mv) for k, (v, mv, _) in sink_rows(serving).items() if k not in before]
    # each revision's events carry its own endpoint label, the version it served
    assert {v for v, mv in logged if mv} == {f"v{stable}", f"v{canary}"}
    assert all(v == f"v{mv}" for v, mv in logged if mv)

    status = serving.controller.apply(serving.render(canary))["status"]
    predictor = status["components"]["predictor"]
    assert predictor["latestRolledoutRevision"] == new
    assert predictor["previousRolledoutRevision"] == old
    assert [(t["revisionName"], t["percent"]) for t in predictor["traffic"]] == [(new, 100)]
    assert Counter(send(serving, 40)) == {canary: 40}
    (retired,) = [r for r in serving.controller.revisions(MODEL) if r.name == old]
    assert all(p.process is not None and p.process.poll() is not None for p in retired.pods)


def test_every_event_of_concurrent_traffic_lands_in_the_payload_log(serving: Serving) -> None:
    serving.ingress.drain()
    before = sink_rows(serving)
    failed_before = sum(len(a.failed) for a in serving.ingress.agents)
    answered = Counter(send(serving, 120))
    serving.ingress.drain()
    assert sum(len(a.failed) for a in serving.ingress.agents) == failed_before
    logged = Counter((v, mv) for k, (v, mv, _) in sink_rows(serving).items() if k not in before)
    assert logged == {(f"v{version}", version): n for version, n in answered.items()}
