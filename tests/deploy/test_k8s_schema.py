"""Every rendered built-in object passes ``kubernetes-validate --strict`` (unknown fields are
errors) for Kubernetes 1.32 and 1.33; CRD-backed kinds are routed to their CRD deliberately.

kubernetes-validate only *warns* for a kind it has no schema for and still exits 0, so these
tests use its library, where a missing schema is an exception: a built-in kind without a schema
fails here, and the only kinds allowed past it are the ones listed in ``CRD_KINDS``.
"""

from __future__ import annotations

import copy
import functools
import json
import subprocess
import sys
from pathlib import Path

import kubernetes_validate.utils as kv
import pytest
from k8s_render import (
    CRD_KINDS,
    K8S_VERSIONS,
    ROOT,
    VALUES_FILES,
    kind_of,
    load_all,
    name_of,
    render,
)

# The schema files are re-read for every object otherwise (same content, same result).
kv.schema_contents = functools.cache(kv.schema_contents)

MANIFESTS = sorted(p for p in (ROOT / "manifests").rglob("*.yaml") if p.parent.name != "kind")


def built_ins(docs: tuple[dict, ...] | list[dict]) -> list[dict]:
    return [o for o in docs if kind_of(o) not in CRD_KINDS]


def unique(objects: list[dict]) -> list[dict]:
    """Objects identical across values files are validated once."""
    seen: dict[str, dict] = {}
    for o in objects:
        seen.setdefault(json.dumps(o, sort_keys=True), o)
    return list(seen.values())


def validate_all(objects: list[dict], version: str) -> list[str]:
    errors = []
    for obj in objects:
        try:
            kv.validate(obj, version, strict=True)
        except kv.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            errors.append(f"{name_of(obj)}: {path}: {exc.message}")
        except kv.SchemaNotFoundError as exc:
            errors.append(f"{name_of(obj)}: no schema ({exc.message}); a CRD kind must be routed")
    return errors


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_rendered_built_in_objects_pass_kubernetes_validate_strict(version: str) -> None:
    objects = unique([o for f in VALUES_FILES for o in built_ins(render(f))])
    assert len(objects) > 30
    assert validate_all(objects, version) == []


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_manifests_pass_kubernetes_validate_strict(version: str) -> None:
    objects = [o for p in MANIFESTS for o in load_all(p.read_text(encoding="utf-8"))]
    assert {o["kind"] for o in objects} >= {"Namespace", "ConfigMap", "Service"}
    assert validate_all(objects, version) == []


def test_only_known_crd_kinds_are_rendered() -> None:
    crd_backed = {kind_of(o) for f in VALUES_FILES for o in render(f)} - {
        kind_of(o) for f in VALUES_FILES for o in built_ins(render(f))
    }
    assert crd_backed == CRD_KINDS


def test_strict_validation_rejects_what_the_api_server_would() -> None:
    (deploy, *_) = [o for o in render() if o["kind"] == "Deployment"]
    broken = copy.deepcopy(deploy)
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    assert "imagePullPolicyy" in validate_all([broken], K8S_VERSIONS[0])[0]
    broken = copy.deepcopy(deploy)
    broken["spec"]["replicas"] = "two"
    assert "spec.replicas" in validate_all([broken], K8S_VERSIONS[0])[0]
    unknown = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert "no schema" in validate_all([unknown], K8S_VERSIONS[0])[0]


def test_the_kubernetes_validate_cli_agrees(tmp_path: Path) -> None:
    """The command line of the issue, once over everything rendered by values.yaml."""
    path = tmp_path / "rendered.yaml"
    path.write_text("\n---\n".join(json.dumps(o) for o in built_ins(render())), encoding="utf-8")
    cli = Path(sys.executable).with_name("kubernetes-validate")
    out = subprocess.run(
        [cli, "--strict", "--kubernetes-version", "1.32.0", "--quiet", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ERROR" not in out.stdout and "WARN" not in out.stdout, out.stdout
