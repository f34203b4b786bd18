"""The rehearsal's pods (tests/support/rehearsal): the image's files, a pod's filesystem, cluster
DNS and Services, checked with plain processes before any chart workload relies on them."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.support.rehearsal.image import build_image_root, ignore_patterns, ignored
from tests.support.rehearsal.pods import (
    ClusterDns,
    Pod,
    ServicePort,
    Volume,
    image_env,
    kube_proxy,
    remove_mount_points,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_image_root(ROOT, tmp_path_factory.mktemp("image") / "app")


@pytest.fixture
def pods() -> Iterator[list[Pod]]:
    started: list[Pod] = []
    yield started
    for pod in started:
        pod.stop()
    remove_mount_points()


def run_pod(pods: list[Pod], pod: Pod, tmp: Path, dns: ClusterDns) -> Pod:
    pod.start(dns, tmp / "run" / pod.name, tmp / f"{pod.name}.log")
    pods.append(pod)
    return pod


def finished(pod: Pod, log: Path, timeout: float = 60) -> str:
    assert pod.process is not None
    pod.process.wait(timeout)
    return log.read_text()


# ---------------------------------------------------------------- the image's files


@pytest.mark.parametrize(
    ("path", "left_out"),
    [
        ("data/house-price.parquet", True),  # `*` leaves every top-level entry out ...
        (".venv/bin/python", True),
        ("src/mlplatform/config/platform.py", False),  # ... `!src/` brings a tree back
        ("src/mlplatform/__pycache__/x.cpython-311.pyc", True),  # `**/__pycache__`
        ("components/x.pyc", True),  # `**/*.pyc` at any depth
        ("feature_repo/feature_store.yaml", False),
        ("feature_repo/data/registry.db", True),  # a later exclusion wins
        ("README.md", False),
        ("READMEs.md", True),
    ],
)
def test_dockerignore_is_matched_as_docker_matches_it(path: str, left_out: bool) -> None:
    patterns = ignore_patterns((ROOT / ".dockerignore").read_text())
    assert ignored(path, patterns) is left_out


def test_image_root_holds_what_the_dockerfile_copies_and_nothing_else(image_root: Path) -> None:
    top = {p.name for p in image_root.iterdir()}
    # src is installed into site-packages and removed (`rm -rf /app/src /app/build`).
    assert top == {
        "requirements.lock",
        "pyproject.toml",
        "README.md",
        "configs",
        "feature_repo",
        "components",
        "pipelines",
    }
    assert not list(image_root.rglob("__pycache__")) and not list(image_root.rglob("*.pyc"))
    assert (image_root / "configs/house-price.yaml").read_bytes() == (
        ROOT / "configs/house-price.yaml"
    ).read_bytes()
    assert (image_root / "pipelines/training_pipeline.yaml").exists()
    assert image_env(ROOT / "images/Dockerfile")["HOME"] == "/tmp"


# ---------------------------------------------------------------- names

PROBE = """
import json, socket, subprocess, sys
out = {}
for name in sys.argv[1:]:
    try:
        out[name] = socket.gethostbyname(name)
    except OSError:
        out[name] = None
    c = subprocess.run(["getent", "hosts", name], capture_output=True, text=True)
    out[name + " (libc)"] = c.stdout.split()[0] if c.returncode == 0 else None
print(json.dumps(out))
"""


def test_a_pod_resolves_names_as_in_its_namespace(
    tmp_path: Path, image_root: Path, pods: list[Pod]
) -> None:
    dns = ClusterDns()
    mlflow = dns.add_service("mlplatform", "mlplatform-mlflow")
    kfp = dns.add_service("kubeflow", "ml-pipeline")
    names = [
        "mlplatform-mlflow",
        "mlplatform-mlflow.mlplatform",
        "mlplatform-mlflow.mlplatform.svc.cluster.local",
        "ml-pipeline",
        "ml-pipeline.kubeflow",
        "pypi.org",
    ]
    seen = {}
    for ns in ("mlplatform", "kubeflow"):
        pod = Pod(f"probe-{ns}", ns, [sys.executable, "-c", PROBE, *names], {}, [], image_root)
        run_pod(pods, pod, tmp_path, dns)
        seen[ns] = json.loads(finished(pod, tmp_path / f"{pod.name}.log").splitlines()[-1])
    for ns, got in seen.items():
        for via in ("", " (libc)"):
            assert got["mlplatform-mlflow.mlplatform" + via] == mlflow
            assert got["mlplatform-mlflow.mlplatform.svc.cluster.local" + via] == mlflow
            assert got["ml-pipeline.kubeflow" + via] == kfp
            assert got["pypi.org" + via] is None  # nothing outside the cluster, no network
            # A short name resolves only in its own namespace (item 2 of the issue).
            assert got["mlplatform-mlflow" + via] == (mlflow if ns == "mlplatform" else None)
            assert got["ml-pipeline" + via] == (kfp if ns == "kubeflow" else None)


# ---------------------------------------------------------------- filesystem

WRITES = """
import json, os, sys
out = {}
for path in sys.argv[1:]:
    try:
        with open(path, "a") as f:
            f.write(os.environ["MLPLATFORM_REHEARSAL_POD_IP"] + "\\n")
        out[path] = "written"
    except OSError as exc:
        out[path] = exc.strerror
out["shared"] = sorted(os.listdir("/shared"))
out["tmp"] = sorted(os.listdir("/tmp"))
out["cwd"] = os.getcwd()
print(json.dumps(out))
"""


def test_only_mounted_volumes_are_writable_and_a_claim_is_shared(
    tmp_path: Path, image_root: Path, pods: list[Pod]
) -> None:
    dns, claim = ClusterDns(), tmp_path / "pvc"
    claim.mkdir()
    config = tmp_path / "configmap"
    config.mkdir()
    (config / "house-price.yaml").write_text("model_name: house-price\n")
    results = []
    for i in range(2):
        empty_dir = tmp_path / f"emptydir-{i}"
        empty_dir.mkdir()
        volumes = [
            Volume("/tmp", empty_dir),
            Volume("/shared", claim),
            Volume("/etc/mlplatform", config, read_only=True),
        ]
        paths = ["/tmp/x", f"/shared/from-{i}", "/app/x", "/etc/mlplatform/x", "/root/x"]
        pod = Pod(
            f"writer-{i}",
            "mlplatform",
            [sys.executable, "-c", WRITES, *paths],
            {},
            volumes,
            image_root,
        )
        run_pod(pods, pod, tmp_path, dns)
        results.append(json.loads(finished(pod, tmp_path / f"{pod.name}.log").splitlines()[-1]))
    first, second = results
    for i, got in enumerate(results):
        assert got["/tmp/x"] == got[f"/shared/from-{i}"] == "written"
        assert (
            got["/app/x"] == got["/etc/mlplatform/x"] == got["/root/x"] == "Read-only file system"
        )
        assert got["tmp"] == ["x"] and got["cwd"] == "/app"  # a fresh emptyDir per pod
    assert first["shared"] == ["from-0"] and second["shared"] == ["from-0", "from-1"]
    assert not (image_root / "x").exists() and not Path("/root/x").exists()


# ---------------------------------------------------------------- addresses and Services


def test_pods_listen_on_the_same_port_and_services_forward_to_them(
    tmp_path: Path, image_root: Path, pods: list[Pod]
) -> None:
    """Two pods both bind 0.0.0.0:8080 (each gets its own address); each Service forwards
    its port 80 to targetPort 8080 of its pod, and a third pod reaches them by name."""
    dns = ClusterDns()
    with kube_proxy() as proxy:
        for name in ("alpha", "beta"):
            ip = dns.add_service("mlplatform", name)
            www = tmp_path / f"www-{name}"
            www.mkdir()
            (www / "who").write_text(name)
            server = Pod(
                f"{name}-0",
                "mlplatform",
                [sys.executable, "-m", "http.server", "8080", "--bind", "0.0.0.0", "-d", "/tmp"],
                {},
                [Volume("/tmp", www)],
                image_root,
            )
            run_pod(pods, server, tmp_path, dns)
            proxy.add(ServicePort(ip, 80, 8080, [server.ip]))
        for pod in pods:
            wait_http(f"http://{pod.ip}:8080/who")
        client = Pod(
            "client",
            "kubeflow",
            [
                sys.executable,
                "-c",
                "import urllib.request as u;"
                "print(*(u.urlopen(f'http://{n}.mlplatform.svc.cluster.local/who').read().decode()"
                " for n in ('alpha', 'beta')))",
            ],
            {},
            [],
            image_root,
        )
        run_pod(pods, client, tmp_path, dns)
        assert finished(client, tmp_path / "client.log").split()[-2:] == ["alpha", "beta"]
    assert pods[0].ip != pods[1].ip


def wait_http(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer")
