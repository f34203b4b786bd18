"""Rehearsal, first step of the README's kind story: `make deploy SERVING=false` as processes.

The chart rendered as `make deploy` renders it (values-kind.yaml, serving off), Secrets
generated as scripts/deploy.sh makes them, and every workload run by tests/support/rehearsal:
our image's pods for real (MLflow, Feast and its init container, two payload-sink replicas,
the stores hook Job with this machine's psql), PostgreSQL and Redis as this machine's
servers, MinIO as moto's S3 server. Then what a pod elsewhere in the cluster would do: reach
MLflow by its fully qualified name from the `kubeflow` namespace (and fail with the short
one), and post a KServe CloudEvent to the sink, which must land in the stores' database.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from tests.support.chart import RELEASE
from tests.support.rehearsal.pods import Pod
from tests.support.rehearsal.world import World, deployed_platform
from tests.support.services import POSTGRES_URL, need

pytestmark = [pytest.mark.services, pytest.mark.slow]
NAMESPACE = "mlplatform"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    need(POSTGRES_URL, 5432, "PostgreSQL")
    tmp = tmp_path_factory.mktemp("rehearsal")
    kfp = (("kubeflow", "ml-pipeline"),)
    with deployed_platform(tmp, NAMESPACE, POSTGRES_URL, other_services=kfp) as (w, _run):
        yield w


def in_pod(world: World, namespace: str, code: str) -> str:
    """Run ``code`` in a throwaway pod of ``namespace``; its last output line."""
    pod = Pod(
        f"client-{namespace}", namespace, [sys.executable, "-c", code], {}, [], world.image_root
    )
    log = world.tmp / "logs" / f"{pod.name}.log"
    pod.start(world.dns, world.tmp / "run" / pod.name, log)
    assert pod.process is not None and pod.process.wait(60) == 0, log.read_text()[-2000:]
    return log.read_text().strip().splitlines()[-1]


def test_every_workload_of_the_platform_starts_and_is_ready(world: World) -> None:
    names = {w.name: len(w.pods) for w in world.workloads.values()}
    assert names == {
        f"{RELEASE}-postgresql": 1,
        f"{RELEASE}-redis": 1,
        f"{RELEASE}-minio": 1,
        f"{RELEASE}-mlflow": 1,
        f"{RELEASE}-feast": 1,
        f"{RELEASE}-payload-sink": 2,
    }


MLFLOW = """
import json, urllib.request
out = {}
for host in ("mlplatform-mlflow.mlplatform.svc.cluster.local", "mlplatform-mlflow"):
    try:
        out[host] = urllib.request.urlopen(f"http://{host}:5000/health", timeout=10).status
    except OSError as exc:
        out[host] = type(exc).__name__
print(json.dumps(out))
"""


def test_mlflow_answers_by_its_full_name_from_the_pipeline_namespace(world: World) -> None:
    got = json.loads(in_pod(world, "kubeflow", MLFLOW))
    assert got["mlplatform-mlflow.mlplatform.svc.cluster.local"] == 200
    assert got["mlplatform-mlflow"] == "URLError"  # a short name does not resolve there


SINK = """
import json, urllib.request
body = json.dumps({"instances": [[1.0, 2.0]]}).encode()
headers = {
    "content-type": "application/json",
    "ce-id": "rehearsal-1",
    "ce-type": "org.kubeflow.serving.inference.request",
    "ce-source": "http://house-price-predictor/",
    "ce-specversion": "1.0",
    "ce-inferenceservicename": "house-price",
    "ce-endpoint": "v1",
    "ce-component": "predictor",
}
req = urllib.request.Request(
    "http://mlplatform-payload-sink.mlplatform.svc.cluster.local/", body, headers
)
print(urllib.request.urlopen(req, timeout=30).read().decode())
"""


def test_a_logged_event_lands_in_the_stores_database(world: World) -> None:
    """The sink pods took the stores' URL (host, database, user and password) from the
    rendered env and Secret, and the hook Job created that database and role."""
    import psycopg

    assert json.loads(in_pod(world, "kubeflow", SINK)) == {"stored": "rehearsal-1"}
    stores = world.secrets["mlplatform-stores"]
    (hook,) = world.get("Job", f"{RELEASE}-stores-db")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in hook["env"]}
    server = urlsplit(POSTGRES_URL)
    with psycopg.connect(
        host=server.hostname,
        port=server.port or 5432,
        dbname=env["STORES_DATABASE"],
        user=stores["username"],
        password=stores["password"],
    ) as conn:
        rows = conn.execute(
            "SELECT model, variant, endpoint, n_instances FROM payloads WHERE request_id = %s",
            ("rehearsal-1",),
        ).fetchall()
    assert rows == [("house-price", "v1", "predict", 1)]


def test_feast_registry_was_applied_into_the_shared_claim(world: World) -> None:
    claim = world.tmp / "claims" / f"{RELEASE}-feast-registry"
    assert [p.name for p in claim.iterdir()], "feast apply wrote nothing into the PVC"
    assert Path(world.image_root / "feature_repo").is_dir()
