"""`make deploy` / `make canary` pin each predictor to a registry version: scripts/deploy.sh run
as the Makefile runs it, with kubectl and helm replaced by recorders and a real MLflow registry
(SQLite) behind ``TRACKING_URI``; the recorded helm flags rendered by the pinned helm."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
from tests.support.chart import CHART, ROOT, helm, load_all, template_args

from mlplatform.config import RegistryConfig
from mlplatform.registry.mlflow_registry import CHALLENGER, CHAMPION, Registry

VALUES = "helm/mlplatform/values-kind.yaml"
RECORDER = """#!/bin/sh
echo "$(basename "$0") $*" >> "$LOG"
case "$*" in *"get namespace"*) exit 1 ;; esac
exit 0
"""


def registry(tmp: Path) -> Registry:
    reg = Registry(RegistryConfig(tracking_uri=f"sqlite:///{tmp}/m.db", artifact_root=str(tmp)))
    for model in ("house-price", "credit-risk"):
        reg.client.create_registered_model(model)
    return reg


def new_version(reg: Registry, model: str) -> str:
    run = reg.client.create_run(reg.experiment_id())
    reg.client.set_terminated(run.info.run_id)
    mv = reg.client.create_model_version(model, f"{reg.cfg.artifact_root}/m", run.info.run_id)
    return str(mv.version)


def deploy(tmp: Path, reg: Registry, **env: str) -> tuple[subprocess.CompletedProcess[str], str]:
    """scripts/deploy.sh with recording kubectl/helm; (the run, the recorded helm line)."""
    for tool in ("kubectl", "helm"):
        (tmp / tool).write_text(RECORDER)
        (tmp / tool).chmod(stat.S_IRWXU)
    log = tmp / "calls.log"
    log.unlink(missing_ok=True)
    done = subprocess.run(
        ["bash", "scripts/deploy.sh"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **os.environ,
            "LOG": str(log),
            "KUBECTL": str(tmp / "kubectl"),
            "HELM": str(tmp / "helm"),
            "KUBE_CONTEXT": "kind-mlplatform",
            "NAMESPACE": "mlplatform",
            "RELEASE": "mlplatform",
            "VALUES": VALUES,
            "KFP_NAMESPACE": "kubeflow",
            "PIPELINE_DATA_SECRET": "mlplatform-pipeline-data",
            "PYTHON": str(ROOT / ".venv" / "bin" / "python"),
            "TRACKING_URI": str(reg.cfg.tracking_uri),
            "HELM_ARGS": "--set serving.enabled=true",
            **env,
        },
    )
    calls = log.read_text().splitlines() if log.exists() else []
    upgrades = [c for c in calls if c.startswith("helm ") and " upgrade --install " in c]
    return done, upgrades[0] if upgrades else ""


def rendered(helm_line: str) -> dict[str, dict]:
    """The InferenceServices the recorded ``helm upgrade`` flags render (pinned helm)."""
    words = helm_line.split()
    flags = words[words.index("15m") + 1 :]
    out = helm(*template_args(None, versions=False), "--values", str(ROOT / VALUES), *flags)
    docs = load_all(out.stdout)
    return {o["metadata"]["name"]: o for o in docs if o["kind"] == "InferenceService"}


def served(isvc: dict) -> tuple[str, int | None]:
    predictor = isvc["spec"]["predictor"]
    args = predictor["containers"][0]["args"]
    return args[args.index("--model_version") + 1], predictor.get("canaryTrafficPercent")


def test_deploy_pins_champions_and_canary_pins_the_challenger(tmp_path: Path) -> None:
    reg = registry(tmp_path)
    hp1, cr1 = new_version(reg, "house-price"), new_version(reg, "credit-risk")
    reg.set_alias("house-price", CHAMPION, hp1)
    reg.set_alias("credit-risk", CHAMPION, cr1)
    hp2 = new_version(reg, "house-price")
    reg.set_alias("house-price", CHALLENGER, hp2)

    done, line = deploy(tmp_path, reg)
    assert done.returncode == 0, done.stderr
    isvcs = rendered(line)
    assert served(isvcs["house-price"]) == (hp1, None)  # the champion, not the challenger
    assert served(isvcs["credit-risk"]) == (cr1, None)

    done, line = deploy(tmp_path, reg, CANARY="house-price", CANARY_PERCENT="10")
    assert done.returncode == 0, done.stderr
    isvcs = rendered(line)
    assert served(isvcs["house-price"]) == (hp2, 10)
    assert served(isvcs["credit-risk"]) == (cr1, None)
    # The user's own SET comes after the pinned flags, so it wins.
    done, line = deploy(
        tmp_path,
        reg,
        HELM_ARGS=f"--set serving.enabled=true --set models.house-price.modelVersion={hp1}",
    )
    assert served(rendered(line)["house-price"]) == (hp1, None)


@pytest.mark.parametrize("case", ["no champion", "no challenger", "rolled back"])
def test_nothing_is_deployed_without_a_version_to_serve(tmp_path: Path, case: str) -> None:
    reg = registry(tmp_path)
    v1 = new_version(reg, "house-price")
    reg.set_alias("credit-risk", CHAMPION, new_version(reg, "credit-risk"))
    env = {"CANARY": "house-price"}
    if case != "no champion":
        reg.set_alias("house-price", CHAMPION, v1)
    if case == "rolled back":
        v2 = new_version(reg, "house-price")
        reg.set_alias("house-price", CHALLENGER, v2)
        reg.client.set_model_version_tag("house-price", v2, "rollback.at", "2026-12-04T00:00:00")
    if case == "no champion":
        env = {}
    done, line = deploy(tmp_path, reg, **env)
    assert done.returncode == 2 and line == ""  # helm never ran
    expected = "has no champion" if case == "no champion" else "no challenger awaiting a rollout"
    assert expected in done.stderr and "make pipeline-run MODEL=house-price" in done.stderr
    assert "Traceback" not in done.stderr


def test_serving_false_needs_no_registry(tmp_path: Path) -> None:
    reg = Registry(RegistryConfig(tracking_uri="http://127.0.0.1:9"))  # nothing listens there
    done, line = deploy(tmp_path, reg, SERVING="false", HELM_ARGS="--set serving.enabled=false")
    assert done.returncode == 0, done.stderr
    assert "modelVersion" not in line and "serving.enabled=false" in line
    assert CHART.name in line


def test_a_model_disabled_by_set_needs_no_champion(tmp_path: Path) -> None:
    """`make deploy SET=models.credit-risk.enabled=false`: only house-price is pinned (credit-risk
    has no champion, which would otherwise refuse the deploy)."""
    reg = registry(tmp_path)
    hp1 = new_version(reg, "house-price")
    reg.set_alias("house-price", CHAMPION, hp1)
    args = "--set serving.enabled=true --set models.credit-risk.enabled=false"
    done, line = deploy(tmp_path, reg, HELM_ARGS=args)
    assert done.returncode == 0, done.stderr
    isvcs = rendered(line)
    assert set(isvcs) == {"house-price"} and served(isvcs["house-price"]) == (hp1, None)
    done, line = deploy(tmp_path, reg)  # both enabled: credit-risk's missing champion refuses
    assert done.returncode == 2 and "credit-risk has no champion" in done.stderr
