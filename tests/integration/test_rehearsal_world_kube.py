"""The rehearsal's World with its EMULATED Kubernetes API (tests/support/rehearsal/world.py,
kube_api/), fed with the chart as `make deploy` renders it (values-kind.yaml, serving on).

A pod that World.pod_for builds from the rendered rollout Deployment gets the `kubernetes`
Service env and its ServiceAccount token, and reads its InferenceService with the real
`kubernetes` client; a pod of a workload that does not automount (the payload sink) gets the
env but no token. No PostgreSQL: the World is built without apply(), except where apply() runs
with its pod starts recorded, to show it leaves the rollout controllers for later.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from tests.support.chart import RELEASE, helm, load_all, template_args
from tests.support.rehearsal.pods import ClusterDns, Pod, kube_proxy
from tests.support.rehearsal.world import World, generated_secrets, new_run_id

pytestmark = pytest.mark.slow
NS = "mlplatform"
ROLLOUT = f"{RELEASE}-rollout-house-price"
SINK = f"{RELEASE}-payload-sink"
TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
Obj = dict[str, Any]

CLIENT = """
import json, os
from kubernetes import client, config
out = {"host": os.environ["KUBERNETES_SERVICE_HOST"], "port": os.environ["KUBERNETES_SERVICE_PORT"]}
out["files"] = sorted(os.listdir(TOKEN_DIR)) if os.path.isdir(TOKEN_DIR) else None
if out["files"]:
    config.load_config()
    isvc = client.CustomObjectsApi().get_namespaced_custom_object(
        "serving.kserve.io", "v1beta1", "mlplatform", "inferenceservices", "house-price")
    out["isvc"] = [isvc["metadata"]["name"], isvc["metadata"]["generation"]]
print(json.dumps(out))
""".replace("TOKEN_DIR", repr(TOKEN_DIR))


@pytest.fixture(scope="module")
def docs() -> list[Obj]:
    return load_all(helm(*template_args("values-kind.yaml")).stdout)


@pytest.fixture
def new_world(tmp_path: Path, docs: list[Obj]) -> Iterator[World]:
    """A World of the rendered docs, nothing started (no PostgreSQL: the admin URL is unused),
    with addresses and a kube-proxy of its own; stopped afterwards."""
    with kube_proxy() as proxy:
        secrets = generated_secrets(new_run_id())
        w = World(tmp_path, NS, secrets, ClusterDns(), proxy, "", docs=docs)
        try:
            yield w
        finally:
            w.stop()


@pytest.fixture
def world(new_world: World) -> tuple[World, list[str]]:
    """With the Kubernetes API stand-in started; the InferenceServices its hook saw."""
    seeded: list[str] = []

    def controller(isvc: Obj) -> Obj:
        seeded.append(isvc["metadata"]["name"])
        return isvc

    new_world.start_kube_api(controller)
    return new_world, seeded


def run_in(world: World, workload: str) -> tuple[Pod, Obj]:
    """CLIENT in a pod World.pod_for builds from ``workload``'s rendered template (its env and
    volumes, the stand-in's env and token); its output."""
    template = world.get("Deployment", workload)["spec"]["template"]
    (container,) = template["spec"]["containers"]
    pod = replace(world.pod_for(workload, template, container), argv=[sys.executable, "-c", CLIENT])
    pod.start(world.dns, world.tmp / "run" / pod.name, world.log(pod))
    try:
        assert pod.process is not None and pod.process.wait(60) == 0, world.log(pod).read_text()
    finally:
        pod.stop()
    return pod, json.loads(world.log(pod).read_text().strip().splitlines()[-1])


def test_the_rollout_pod_gets_env_and_token_and_reads_its_inference_service(world: Any) -> None:
    w, seeded = world
    assert sorted(seeded) == ["credit-risk", "house-price"]  # on_write saw every seed
    pod, out = run_in(w, ROLLOUT)
    assert w.kube is not None and w.kube.service_ip is not None
    assert {k: v for k, v in pod.env.items() if k.startswith("KUBERNETES_")} == w.kube.pod_env()
    assert (out["host"], out["port"]) == (w.kube.service_ip, "443")
    assert [v.path for v in pod.volumes if v.path == TOKEN_DIR] == [TOKEN_DIR]
    assert out["files"] == ["ca.crt", "namespace", "token"]
    assert out["isvc"] == ["house-price", 1]


def test_a_pod_that_does_not_automount_gets_the_env_but_no_token(world: Any) -> None:
    w, _ = world
    template = w.get("Deployment", SINK)["spec"]["template"]
    assert template["spec"]["automountServiceAccountToken"] is False
    pod, out = run_in(w, SINK)
    assert TOKEN_DIR not in [v.path for v in pod.volumes]
    assert w.kube is not None and out["host"] == w.kube.service_ip
    assert out["files"] is None
    assert pod.env["HOME"] == "/tmp"  # the container's own env still as rendered


def test_apply_leaves_the_rollout_controllers_until_the_api_runs(
    new_world: World, docs: list[Obj], monkeypatch: pytest.MonkeyPatch
) -> None:
    """apply() with every pod start recorded, not run: with serving on, the chart renders a
    rollout controller per model; apply() starts neither, start_rollout() both, after the API."""
    w, started = new_world, []
    monkeypatch.setattr(w, "_start_upstream", lambda component, obj, progress: None)
    monkeypatch.setattr(w, "run_job", lambda job, progress: "")
    record = lambda obj, progress: started.append(obj["metadata"]["name"])  # noqa: E731
    monkeypatch.setattr(w, "start_workload", record)
    w.apply(docs, progress=lambda _: None)
    assert sorted(started) == [f"{RELEASE}-{c}" for c in ("feast", "mlflow", "payload-sink")]
    rollouts = [d["metadata"]["name"] for d in w.rollout_controllers()]
    assert sorted(rollouts) == [f"{RELEASE}-rollout-credit-risk", ROLLOUT]
    with pytest.raises(RuntimeError, match="start_kube_api"):
        w.start_rollout()
    started.clear()
    w.start_kube_api()
    w.start_rollout(progress=lambda _: None)
    assert started == rollouts
