"""scripts/preflight.sh: the cluster targets check their tools (and kube context) before they
run anything, and say what is missing, the version needed and where to get it.

Every tool is a stub on a PATH built for the test (no docker, kind or cluster is needed),
except kubectl and helm, which are the pinned binaries in .tools/bin."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from k8s_render import HELM, KUBECTL, ROOT

SCRIPT = ROOT / "scripts" / "preflight.sh"
TOOLS_RECIPE = r"extract_k8s_tools\.py|^touch "  # `make tools`, when .tools is stale
SYSTEM = ("bash", "grep", "head", "tr", "make")  # what the script and make run from PATH
GOOD = {
    "docker": "27.3.1",  # `docker version --format {{.Server.Version}}`
    "kind": "kind v0.31.0 go1.25.5 linux/amd64",
    "minikube": "v1.37.0",
}
KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {}}]
contexts: [{name: kind-mlplatform, context: {cluster: c, user: u}}]
current-context: kind-mlplatform
"""


def stub(bin_dir: Path, name: str, version: str | None, info: str = "8 17179869184") -> None:
    """An executable ``name`` printing ``version`` (exit 1 when None: a daemon that is down)."""
    body = f"echo '{version}'" if version is not None else "echo 'Cannot connect' >&2; exit 1"
    script = bin_dir / name
    script.write_text(
        f'#!/bin/sh\nif [ "$1" = info ]; then echo "{info}"; exit 0; fi\n{body}\n', "utf-8"
    )
    script.chmod(0o755)


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    """A PATH with the system tools the script needs and nothing else."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for tool in SYSTEM:
        found = shutil.which(tool)
        assert found, tool
        (folder / tool).symlink_to(found)
    return folder


def preflight(bin_dir: Path, *args: str, **env: str | Path) -> subprocess.CompletedProcess[str]:
    environ = {"PATH": str(bin_dir), "KUBECTL": str(KUBECTL), "HELM": str(HELM)}
    environ |= {"KUBECONFIG": str(bin_dir.parent / "none"), "HOME": str(bin_dir.parent)}
    environ |= {k: str(v) for k, v in env.items()}
    return subprocess.run(
        ["bash", str(SCRIPT), *args], env=environ, capture_output=True, text=True, timeout=60
    )


def test_all_present_and_recent_is_silent(bin_dir: Path) -> None:
    for name, version in GOOD.items():
        stub(bin_dir, name, version)
    out = preflight(bin_dir, "docker", "kind", "kubectl", "helm", "minikube")
    assert (out.returncode, out.stdout, out.stderr) == (0, "", "")


def test_missing_kind_is_named_with_the_version_needed_and_where_to_get_it(
    bin_dir: Path,
) -> None:
    stub(bin_dir, "docker", GOOD["docker"])
    out = preflight(bin_dir, "docker", "kind", "kubectl")
    assert out.returncode == 2
    (line,) = [x for x in out.stderr.splitlines() if x.startswith("preflight: kind:")]
    assert "not found on PATH" in line and "v0.31.0 or newer" in line
    assert "https://kind.sigs.k8s.io/" in line
    assert "docker:" not in out.stderr and "kubectl:" not in out.stderr  # those are fine


def test_make_kind_up_without_kind_stops_before_running_kind(bin_dir: Path) -> None:
    """The issue's case: `make kind-up` ended in `kind: command not found`."""
    stub(bin_dir, "docker", GOOD["docker"])
    out = subprocess.run(
        ["make", "--no-print-directory", "-f", "mk/cluster.mk", "BIN=.venv/bin", "kind-up"],
        cwd=ROOT,
        env={"PATH": str(bin_dir), "HOME": str(bin_dir.parent)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert "preflight: kind: not found on PATH" in out.stderr
    assert "command not found" not in out.stderr + out.stdout


@pytest.mark.parametrize(
    ("tool", "version", "expected"),
    [
        ("kind", "kind v0.20.0 go1.20.4 linux/amd64", "kind: 0.20.0 is too old"),
        ("docker", "19.03.8", "docker: 19.03.8 is too old"),
        ("minikube", "v1.32.0", "minikube: 1.32.0 is too old"),
        ("kubectl", "Client Version: v1.31.9\nKustomize Version: v5.4.2", "1.31.9 is too old"),
        ("kubectl", "Client Version: v1.35.0\nKustomize Version: v5.7.1", "1.35.0 is too new"),
        ("helm", "v3.7.2+g663a896", "helm: 3.7.2 is too old"),
    ],
)
def test_a_version_out_of_range_is_refused(
    bin_dir: Path, tool: str, version: str, expected: str
) -> None:
    stub(bin_dir, tool, version)
    out = preflight(bin_dir, tool, **{tool.upper(): bin_dir / tool})
    assert out.returncode == 2
    assert expected in out.stderr


def test_the_pinned_tools_are_pointed_to_when_missing(bin_dir: Path, tmp_path: Path) -> None:
    absent = tmp_path / ".tools" / "bin"
    out = preflight(bin_dir, "kubectl", "helm", KUBECTL=absent / "kubectl", HELM=absent / "helm")
    assert out.returncode == 2
    for tool in ("kubectl", "helm"):
        (line,) = [x for x in out.stderr.splitlines() if x.startswith(f"preflight: {tool}:")]
        assert f"not found at {absent / tool}" in line
        assert (
            "`make setup` extracts the pinned helm 3.17.2 and kubectl 1.32.3 into .tools/bin"
            in (line)
        )


def test_a_docker_daemon_that_is_down_says_so(bin_dir: Path) -> None:
    stub(bin_dir, "docker", None)
    out = preflight(bin_dir, "docker")
    assert out.returncode == 2
    assert "the Docker daemon is not reachable" in out.stderr


def test_too_little_docker_memory_is_a_warning_only(bin_dir: Path) -> None:
    stub(bin_dir, "docker", GOOD["docker"], info=f"4 {8 * 1024**3}")
    out = preflight(bin_dir, "docker")
    assert out.returncode == 0
    assert "warning: Docker has 4 CPUs and 8 GiB; the cluster needs 6 CPUs and 12 GiB" in (
        out.stderr
    )


def test_the_kube_context_must_exist_once_the_cluster_should(bin_dir: Path) -> None:
    args = ("--context", "kind-mlplatform", "--up", "kind-up", "kubectl", "helm")
    out = preflight(bin_dir, *args)
    assert out.returncode == 2
    assert "kube context kind-mlplatform does not exist" in out.stderr
    assert "(make kind-up)" in out.stderr
    kubeconfig = bin_dir.parent / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG, "utf-8")
    out = preflight(bin_dir, *args, KUBECONFIG=kubeconfig)
    assert (out.returncode, out.stderr) == (0, "")


def test_every_cluster_target_runs_the_preflight_first() -> None:
    """Each recipe's first line is the check, with the tools that recipe calls."""
    expected = {
        "kind-up": "docker kind kubectl",
        "kind-load": "docker kind",
        "install-deps": "--context kind-mlplatform --up kind-up kubectl helm",
        "deploy": "--context kind-mlplatform --up kind-up kubectl helm",
        "pipeline-run": "--context kind-mlplatform --up kind-up kubectl",
        "kfp-ui": "--context kind-mlplatform --up kind-up kubectl",
        "mlflow-ui": "--context kind-mlplatform --up kind-up kubectl",
        "kind-down": "kind",
        "minikube-up": "docker minikube kubectl",
        "minikube-deploy": "--context mlplatform --up minikube-up kubectl helm",
    }
    for target, args in expected.items():
        out = subprocess.run(
            ["make", "--no-print-directory", "-f", "mk/cluster.mk", "BIN=.venv/bin", "-n", target],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        own = [x for x in out.stdout.splitlines() if not re.search(TOOLS_RECIPE, x)]
        assert own[0].endswith(f"bash scripts/preflight.sh {args}"), (target, out.stdout)
