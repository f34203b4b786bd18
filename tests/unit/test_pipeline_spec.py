"""The compiled pipeline users upload: up to date, valid PipelineSpec, every reference resolves."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from pipelines.training_pipeline import (
    COMPILED,
    COMPONENT_DIR,
    COMPONENTS,
    compile_components,
    compile_pipeline,
)

from mlplatform.image import IMAGE

ROOT = Path(__file__).resolve().parents[2]


def test_committed_pipeline_yaml_is_up_to_date(tmp_path: Path) -> None:
    fresh = compile_pipeline(tmp_path / "p.yaml")
    assert fresh.read_text() == COMPILED.read_text(), "run `make compile` and commit the YAML"


def test_the_installed_package_compiles_the_pipeline_outside_the_repo(tmp_path: Path) -> None:
    """The console script and the retrain trigger need no checkout: from an empty folder (the
    repository's pipelines/ and components/ are not importable there) the package compiles
    the same pipeline that is committed."""
    code = (
        "from mlplatform.orchestration.training_pipeline import compiled_pipeline as c; print(c())"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()).read_text() == COMPILED.read_text()


def test_committed_component_yamls_are_up_to_date(tmp_path: Path) -> None:
    for path in compile_components(tmp_path):
        assert path.read_text() == (COMPONENT_DIR / path.name).read_text(), path.name


@pytest.fixture(scope="module")
def spec() -> pipeline_spec_pb2.PipelineSpec:
    docs = list(yaml.safe_load_all(COMPILED.read_text()))
    assert len(docs) == 2  # the PipelineSpec, then the Kubernetes PlatformSpec
    out = pipeline_spec_pb2.PipelineSpec()
    json_format.ParseDict(docs[0], out, ignore_unknown_fields=False)  # unknown field → error
    return out


@pytest.fixture(scope="module")
def platform() -> dict[str, Any]:
    """The Kubernetes settings of each executor (second document), checked against the
    kfp-kubernetes schema: unknown fields are errors."""
    from kfp.kubernetes import kubernetes_executor_config_pb2 as k8s

    doc = list(yaml.safe_load_all(COMPILED.read_text()))[1]
    executors: dict[str, Any] = doc["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for name, config in executors.items():
        json_format.ParseDict(config, k8s.KubernetesExecutorConfig(), ignore_unknown_fields=False)
        assert name.startswith("exec-"), name
    return executors


def test_only_the_data_step_gets_the_object_store_secret(
    spec: pipeline_spec_pb2.PipelineSpec, platform: dict[str, Any]
) -> None:
    """The data step fetches ``data.version`` from S3 with the Secret named by the run's
    ``data_secret`` parameter (optional, so a run without one, or kfp.local, still starts);
    its keys are the ones scripts/deploy.sh writes, the variables the ones S3 clients read."""
    from mlplatform.versioning.remote import ENDPOINT_VARS

    assert set(platform) == {"exec-data"}
    (entry,) = platform["exec-data"]["secretAsEnv"]
    assert entry["secretNameParameter"] == {"componentInputParameter": "data_secret"}
    assert entry["optional"] is True
    env = {e["secretKey"]: e["envVar"] for e in entry["keyToEnv"]}
    assert env["access-key-id"] == "AWS_ACCESS_KEY_ID"
    assert env["secret-access-key"] == "AWS_SECRET_ACCESS_KEY"
    assert env["endpoint-url"] in ENDPOINT_VARS
    deploy = (ROOT / "scripts" / "deploy.sh").read_text(encoding="utf-8")
    for key in env:
        assert f"--from-literal={key}=" in deploy, key
    default = spec.root.input_definitions.parameters["data_secret"].default_value.string_value
    mk = (ROOT / "mk" / "cluster.mk").read_text(encoding="utf-8")
    assert "PIPELINE_DATA_SECRET := $(shell sed -n 's/^DATA_SECRET = " in mk
    assert f'DATA_SECRET = "{default}"' in (
        ROOT / "src/mlplatform/orchestration/training_pipeline.py"
    ).read_text(encoding="utf-8")


def _all_tasks(spec: pipeline_spec_pb2.PipelineSpec) -> list[tuple[str, object]]:
    tasks = list(spec.root.dag.tasks.items())
    for comp in spec.components.values():
        if comp.HasField("dag"):
            tasks += list(comp.dag.tasks.items())
    return tasks


def test_every_task_and_executor_reference_resolves(spec: pipeline_spec_pb2.PipelineSpec) -> None:
    executors = spec.deployment_spec["executors"]
    tasks = _all_tasks(spec)
    assert {name for name, _ in tasks} >= {
        "data",
        "normalize",
        "train-gd",
        "explain",
        "gate",
        "register",
        "condition-1",
    }
    for name, task in tasks:
        ref = task.component_ref.name  # type: ignore[attr-defined]
        assert ref in spec.components, f"task {name} → missing component {ref}"
        comp = spec.components[ref]
        if comp.executor_label:
            assert comp.executor_label in executors, f"{ref} → missing executor"


def cached_tasks(spec: pipeline_spec_pb2.PipelineSpec) -> list[str]:
    """Names of the tasks KFP would serve from its cache (``enableCache``)."""
    return sorted(
        name
        for name, task in _all_tasks(spec)
        if task.caching_options.enable_cache  # type: ignore[attr-defined]
    )


def test_no_task_reuses_cached_outputs(spec: pipeline_spec_pb2.PipelineSpec) -> None:
    """KFP caches every task by default: a second run on the same inputs (a retrain on the
    same data version after drift) would reuse the old model and register nothing. Off in the
    spec, so every run trains, whoever starts it (scripts, the retrain trigger, the UI)."""
    tasks = _all_tasks(spec)
    assert {name for name, _ in tasks} >= {"data", "train-gd", "register"}
    assert cached_tasks(spec) == []


def test_a_task_left_at_the_default_is_cached(tmp_path: Path) -> None:
    """Negative control: without set_caching_options(False) the compiler turns the cache on,
    and the check above sees it."""
    from kfp import compiler, dsl

    from mlplatform.orchestration.components.data import data

    def default_caching(config_json: str) -> None:
        data(config_json=config_json)

    # This module's annotations are strings (PEP 563); KFP reads real types.
    default_caching.__annotations__ = {"config_json": str}
    path = tmp_path / "p.yaml"
    compiler.Compiler().compile(dsl.pipeline(name="default-caching")(default_caching), str(path))
    out = pipeline_spec_pb2.PipelineSpec()
    json_format.ParseDict(yaml.safe_load(path.read_text()), out)
    assert cached_tasks(out) == ["data"]


def test_every_container_uses_the_one_image(spec: pipeline_spec_pb2.PipelineSpec) -> None:
    executors = spec.deployment_spec["executors"]
    images = {e["container"]["image"] for e in executors.values()}
    assert images == {IMAGE}
    for e in executors.values():
        res = e["container"]["resources"]
        assert res["resourceCpuRequest"] and res["resourceMemoryRequest"]
        assert res["resourceCpuLimit"] and res["resourceMemoryLimit"]


def test_register_runs_only_when_the_gate_passed(spec: pipeline_spec_pb2.PipelineSpec) -> None:
    """The whole condition, not a substring: a negated one (``!=``, ``== 'false'``, another
    task's output) must fail here."""
    cond = spec.root.dag.tasks["condition-1"]
    gate = "inputs.parameter_values['pipelinechannel--gate-Output']"
    assert cond.trigger_policy.condition == f"{gate} == 'true'"
    assert "gate" in cond.dependent_tasks
    assert "register" in spec.components[cond.component_ref.name].dag.tasks


def test_component_yamls_load_for_reuse() -> None:
    from kfp import components

    for name in COMPONENTS:
        comp = components.load_component_from_file(str(COMPONENT_DIR / f"{name}.yaml"))
        assert "config_json" in comp.component_spec.inputs
