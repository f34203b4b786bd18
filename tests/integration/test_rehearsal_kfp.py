"""Rehearsal, the README's second step: `make cluster-data`, then `make pipeline-upload` and
`make pipeline-run` against a KFP API that runs what it is given (tests/support/rehearsal/kfp.py).

The platform is deployed as tests/integration/test_rehearsal_platform.py deploys it (serving
off). The house-price dataset is pushed into the release's DVC remote in MinIO as
scripts/cluster_data.sh pushes it (`mlplatform data push` with the release's S3 key pair,
through the MinIO Service's address as a port-forward would give it), and the pipeline Secret
of the `kubeflow` namespace is made as scripts/deploy.sh makes it. Then scripts/kfp_pipeline.py
itself uploads the compiled pipeline and starts runs (its `kubectl get configmap` replaced by
the rendered ConfigMap), and every task runs in a pod of `kubeflow`.
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from tests.support.chart import RELEASE
from tests.support.rehearsal.kfp import KfpBackend, kfp_backend
from tests.support.rehearsal.pods import Pod, Volume
from tests.support.rehearsal.world import (
    ROOT,
    World,
    deployed_platform,
    new_run_id,
)
from tests.support.services import POSTGRES_URL, need

pytestmark = [pytest.mark.services, pytest.mark.slow]
NAMESPACE = "mlplatform"
MODEL = "house-price"
CONFIG = ROOT / "configs" / f"{MODEL}.yaml"
MINIO = f"http://{RELEASE}-minio.{NAMESPACE}.svc.cluster.local:9000"
TASKS = ["data", "normalize", "train_gd", "explain", "gate", "register"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """`make deploy SERVING=false`, as test_rehearsal_platform.py's fixture runs it."""
    need(POSTGRES_URL, 5432, "PostgreSQL")
    tmp = tmp_path_factory.mktemp("rehearsal-kfp")
    with deployed_platform(tmp, NAMESPACE, POSTGRES_URL) as (w, _run):
        yield w


@pytest.fixture(scope="module")
def pushed(world: World) -> str:
    """scripts/cluster_data.sh for house-price: generate the dataset, `mlplatform data push` it
    to the release's remote; the md5 it prints."""
    s3 = world.secrets["mlplatform-s3"]
    minio = world.dns.services[(NAMESPACE, f"{RELEASE}-minio")]
    remote = configmap(world)["MLPLATFORM__DATA__REMOTE"]
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": s3["access-key-id"],
        "AWS_SECRET_ACCESS_KEY": s3["secret-access-key"],
        "AWS_ENDPOINT_URL": f"http://{minio}:9000",
        "MLPLATFORM__DATA__DATA_DIR": str(world.tmp / "laptop-data"),  # not the checkout's
    }
    cli = str(Path(sys.executable).parent / "mlplatform")
    for cmd in (["data"], ["data", "push", "--remote", remote]):
        done = subprocess.run(
            [cli, *cmd, "--config", str(CONFIG)],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def kfp(world: World) -> Iterator[KfpBackend]:
    """The KFP stand-in, with the Secret scripts/deploy.sh writes into `kubeflow`."""
    s3 = world.secrets["mlplatform-s3"]
    data_secret = {
        "access-key-id": s3["access-key-id"],
        "secret-access-key": s3["secret-access-key"],
        "endpoint-url": MINIO,
    }
    with kfp_backend(world, {"mlplatform-pipeline-data": data_secret}) as backend:
        yield backend


def configmap(world: World) -> dict[str, str]:
    data: dict[str, str] = world.get("ConfigMap", f"{RELEASE}-pipeline")["data"]
    return data


def kfp_script() -> ModuleType:
    """scripts/kfp_pipeline.py as a module (its folder on sys.path, as when it is run)."""
    if str(ROOT / "scripts") not in sys.path:
        sys.path.insert(0, str(ROOT / "scripts"))
    spec = importlib.util.spec_from_file_location(
        "kfp_pipeline", ROOT / "scripts" / "kfp_pipeline.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pipeline_run(
    world: World, kfp: KfpBackend, monkeypatch: pytest.MonkeyPatch, data_version: str
) -> tuple[dict[str, Any], int]:
    """`make pipeline-upload` then `make pipeline-run DATA_VERSION=...` (waiting for the run):
    the run as the stand-in holds it, and the script's exit code."""
    script = kfp_script()
    monkeypatch.setattr(script, "pipeline_configmap", lambda args: configmap(world))
    client = script.client(kfp.url)
    script.upload(client, script.PIPELINE)
    before = len(kfp.runs)
    args = argparse.Namespace(
        config=CONFIG, data_version=data_version, pipeline=script.PIPELINE, wait=240
    )
    try:
        script.run(client, args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    (run,) = kfp.runs[before:]
    return run, code


def in_pod(world: World, code: str) -> Any:
    """Run ``code`` in a pod of `kubeflow` (an emptyDir at /tmp, the image's HOME); its last
    output line as JSON."""
    name = f"client-kubeflow-{new_run_id()}"
    tmp = world.tmp / "pods" / name / "volumes" / "tmp"
    tmp.mkdir(parents=True)
    argv = [sys.executable, "-c", code]
    pod = Pod(name, "kubeflow", argv, {"HOME": "/tmp"}, [Volume("/tmp", tmp)], world.image_root)
    log = world.tmp / "logs" / f"{name}.log"
    pod.start(world.dns, world.tmp / "run" / log.stem, log)
    assert pod.process is not None and pod.process.wait(120) == 0, log.read_text()[-2000:]
    return json.loads(log.read_text().strip().splitlines()[-1])


VERSIONS = f"""
import json
from mlflow import MlflowClient
c = MlflowClient("http://{RELEASE}-mlflow.{NAMESPACE}.svc.cluster.local:5000")
found = c.search_model_versions("name = '{MODEL}'")
print(json.dumps({{v.version: v.tags for v in found}}))
"""


@pytest.fixture(scope="module")
def first_run(world: World, kfp: KfpBackend, pushed: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """One run on the pushed version: (the run, the model versions it added)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        before = in_pod(world, VERSIONS)
        run, code = pipeline_run(world, kfp, monkeypatch, pushed)
    assert (code, run["state"]) == (0, "SUCCEEDED"), kfp.log(run["run_id"])[-4000:]
    return run, {v: t for v, t in in_pod(world, VERSIONS).items() if v not in before}


def pod_env(kfp: KfpBackend, run_id: str, pod: str) -> dict[str, str]:
    spec = kfp.home / "runs" / run_id / "pods" / pod / "run" / "spec.json"
    env: dict[str, str] = json.loads(spec.read_text())["env"]
    return env


def test_a_run_trains_on_the_pushed_data_version_in_kubeflow_pods(
    world: World, kfp: KfpBackend, pushed: str, first_run: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    run, added = first_run
    tasks = kfp.tasks(run["run_id"])
    assert [t["task"] for t in tasks] == TASKS
    pods = kfp.home / "runs" / run["run_id"] / "pods"
    for t in tasks:  # each task in a pod of its own, with the cluster DNS of `kubeflow`
        hosts = (pods / t["pod"] / "run" / "hosts").read_text()
        assert f"{RELEASE}-mlflow.{NAMESPACE}.svc.cluster.local" in hosts
        assert f"\t{RELEASE}-mlflow\n" not in hosts
    # the Secret reaches the data step only (kfp-kubernetes use_secret_as_env on that task)
    envs = {t["task"]: pod_env(kfp, run["run_id"], t["pod"]) for t in tasks}
    assert envs["data"]["AWS_ENDPOINT_URL"] == MINIO
    assert not any("AWS_ACCESS_KEY_ID" in env for task, env in envs.items() if task != "data")
    (tags,) = added.values()
    assert tags["lineage.data_md5"] == pushed  # the md5 of the bytes the data step fetched
    remote = configmap(world)["MLPLATFORM__DATA__REMOTE"]
    assert tags["lineage.data_path"] == f"{remote}/files/md5/{pushed[:2]}/{pushed[2:]}"
    assert tags["lineage.trigger"] == "manual"


def test_a_data_version_missing_from_the_remote_fails_the_run_at_its_data_step(
    world: World, kfp: KfpBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = "deadbeef" * 4  # hex, never pushed
    run, code = pipeline_run(world, kfp, monkeypatch, missing)
    assert (code, run["state"]) == (1, "FAILED")
    assert [(t["task"], t["exit_code"] != 0) for t in kfp.tasks(run["run_id"])] == [("data", True)]
    message = run["error"]["message"]
    assert "Inner task failed: 'data'" in message, message
    assert f"data version {missing} is not in the DVC remote s3://" in message, message


def test_a_second_identical_run_trains_again_nothing_is_cached(
    world: World,
    kfp: KfpBackend,
    pushed: str,
    first_run: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    """Every task of the compiled pipeline says ``cachingOptions: {}`` (no cache): the same
    arguments again (now with a champion in the registry for the gate to beat) run every
    task again and register a new version. A name a task pod cannot resolve fails the test
    at once instead of after the client's retries."""
    run, _ = first_run
    script = kfp_script()
    again = script.client(kfp.url).create_run_from_pipeline_package(
        str(script.PIPELINE),
        arguments=run["runtime_config"]["parameters"],
        run_name=f"{MODEL}-again",
        experiment_name=script.EXPERIMENT,
    )
    state = watch(kfp, again.run_id, 240, symptom=f"Failed to resolve '{RELEASE}-minio'")
    assert state == "SUCCEEDED", kfp.log(again.run_id)[-4000:]
    assert [t["task"] for t in kfp.tasks(again.run_id)] == TASKS
    versions = in_pod(world, VERSIONS)  # the first run's and this one's: nothing else trains
    assert sum(t["lineage.data_md5"] == pushed for t in versions.values()) == 2, versions


def watch(kfp: KfpBackend, run_id: str, timeout: float, symptom: str | None = None) -> str:
    """Wait for the run's end (its state); if a task pod's log shows ``symptom``, terminate
    the run and fail with that line."""
    (run,) = [r for r in kfp.runs if r["run_id"] == run_id]
    deadline = time.monotonic() + timeout
    while run["state"] in ("PENDING", "RUNNING") and time.monotonic() < deadline:
        for log in (kfp.home / "runs" / run_id / "pods").glob("*/log"):
            text = log.read_text(errors="replace").splitlines() if symptom else []
            lines = [x for x in text if symptom and symptom in x]
            if lines:
                kfp.terminate(run_id)
                pytest.fail(f"{log.parent.name}: {lines[0][:600]}")
        time.sleep(1)
    return str(run["state"])


def test_the_stand_in_caches_a_task_whose_spec_enables_caching(kfp: KfpBackend) -> None:
    """Control for the test above: with ``enableCache: true`` the second run's task is a
    cache hit and starts no pod, as KFP's driver skips a cached task."""
    import kfp as sdk
    from kfp import dsl

    from mlplatform.image import IMAGE

    @dsl.component(base_image=IMAGE, install_kfp_package=False)
    def echo(text: str) -> str:
        return text

    @dsl.pipeline(name="cache-probe")
    def probe(text: str) -> None:
        echo(text=text).set_caching_options(True)

    client = sdk.Client(host=kfp.url)
    started = []
    for _ in range(2):
        result = client.create_run_from_pipeline_func(
            probe, arguments={"text": "same"}, experiment_name="cache-probe"
        )
        done = client.wait_for_run_completion(result.run_id, timeout=120, sleep_duration=1)
        assert done.state == "SUCCEEDED", kfp.log(result.run_id)[-3000:]
        started.append([t["task"] for t in kfp.tasks(result.run_id)])
    assert started == [["echo"], []]


def test_the_retrain_trigger_starts_one_run_per_alert_through_the_api(
    world: World, kfp: KfpBackend
) -> None:
    """The retrain CronJob's starter (``--backend kfp``): a second start for the same alert
    finds the run by name and starts none. (A data version that is not pushed: the run ends
    at its data step.)"""
    from mlplatform.config import load_config
    from mlplatform.orchestration.retrain import kfp_starter

    overrides = kfp_script().release_overrides(configmap(world), MODEL, "feedface" * 4)
    cfg = load_config(CONFIG, env=overrides)
    start = kfp_starter(kfp.url)
    first, _ = start(cfg, "alert-house-price-1")
    again, _ = start(cfg, "alert-house-price-1")
    assert again == first
    (run,) = [r for r in kfp.runs if r["display_name"] == "alert-house-price-1"]
    assert run["runtime_config"]["parameters"]["trigger"] == "alert-house-price-1"
    assert watch(kfp, first, 120) == "FAILED"
    assert [t["task"] for t in kfp.tasks(first)] == ["data"]


def test_uploading_the_same_pipeline_again_adds_no_version(
    kfp: KfpBackend, first_run: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    """`make pipeline-upload` twice on the same YAML: the second finds its content-named
    version (the first upload made it beside KFP's default one) and uploads nothing."""
    script = kfp_script()
    client = script.client(kfp.url)
    pipeline_id = client.get_pipeline_id(script.PIPELINE_NAME)

    def names() -> list[str]:
        versions = client.list_pipeline_versions(pipeline_id, page_size=100).pipeline_versions
        return sorted(v.display_name for v in versions or [])

    before = names()
    assert script.version_name(script.PIPELINE) in before
    script.upload(client, script.PIPELINE)
    assert names() == before
