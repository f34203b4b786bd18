"""Helpers of the deploy tests: run the pinned helm, load what it renders, walk pod specs.

Everything here is offline: helm and kubectl come from ``.tools/bin`` (extracted from a wheel
in requirements.lock), the KServe CRD from ``<repo>/../shared/crds/kserve-v0.20.0``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from functools import cache
from typing import Any

from tests.support.chart import (  # noqa: F401 (CHART, NAMESPACE, RELEASE: re-exported)
    CHART,
    HELM,
    NAMESPACE,
    RELEASE,
    ROOT,
    SERVED_VERSIONS,
    helm,
    load_all,
    template_args,
)

TOOLS_BIN = HELM.parent
KUBECTL = TOOLS_BIN / "kubectl"
CRD_DIR = ROOT.parent / "shared" / "crds" / "kserve-v0.20.0"
ISVC_CRD = CRD_DIR / "serving.kserve.io_inferenceservices.yaml"
VALUES_FILES = ("values.yaml", "values-kind.yaml", "values-minikube.yaml")
#: Kubernetes versions every built-in object is validated against: 1.32 (the issue's target,
#: kubectl 1.32.3) and 1.33 (the kind/minikube node, mk/cluster.mk K8S_VERSION).
K8S_VERSIONS = ("1.32.0", "1.33.0")
#: Kinds defined by CRDs. kubernetes-validate has no schema for them (it would only warn), so
#: they are routed explicitly: InferenceService to the KServe v0.20.0 CRD schema. Any other
#: kind must be a built-in with a schema, or the test fails.
CRD_KINDS = {("serving.kserve.io/v1beta1", "InferenceService")}

Obj = dict[str, Any]


@cache
def render(values_file: str | None = "values.yaml", *sets: str) -> tuple[Obj, ...]:
    """``helm template`` of the chart with one values file (overlaid on values.yaml)."""
    out = helm(*template_args(values_file, *sets))
    return tuple(load_all(out.stdout))


def render_error(values_file: str | None = "values.yaml", *sets: str) -> str:
    """The stderr of a ``helm template`` that must fail (asserts it failed)."""
    out = helm(*template_args(values_file, *sets), check=False)
    assert out.returncode != 0, f"helm template {sets} rendered, expected a failure"
    return out.stderr


def kind_of(obj: Obj) -> tuple[str, str]:
    return obj["apiVersion"], obj["kind"]


def name_of(obj: Obj) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def pod_specs(obj: Obj) -> Iterator[tuple[str, Obj]]:
    """(where, pod spec) of every pod an object creates, InferenceService components included."""
    kind = obj["kind"]
    spec = obj.get("spec", {})
    if kind in {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}:
        yield name_of(obj), spec["template"]["spec"]
    elif kind == "CronJob":
        yield name_of(obj), spec["jobTemplate"]["spec"]["template"]["spec"]
    elif kind == "Pod":
        yield name_of(obj), spec
    elif kind == "InferenceService":
        for component in ("predictor", "transformer", "explainer"):
            if component in spec:
                yield f"{name_of(obj)}.{component}", spec[component]


def pod_labels(obj: Obj) -> Iterator[tuple[str, dict[str, str]]]:
    """(where, labels) of the pods an object creates."""
    kind = obj["kind"]
    spec = obj.get("spec", {})
    if kind in {"Deployment", "StatefulSet", "Job"}:
        yield name_of(obj), spec["template"]["metadata"].get("labels", {})
    elif kind == "CronJob":
        tmpl = spec["jobTemplate"]["spec"]["template"]
        yield name_of(obj), tmpl["metadata"].get("labels", {})
    elif kind == "InferenceService":
        for component in ("predictor", "transformer", "explainer"):
            if component in spec:
                labels = {
                    **spec[component].get("labels", {}),
                    "serving.kserve.io/inferenceservice": obj["metadata"]["name"],
                }
                yield f"{name_of(obj)}.{component}", labels


def selects(selector: Obj, labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels, matchExpressions In/Exists) selects ``labels``."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, vals = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in vals:
            return False
        if op == "Exists" and key not in labels:
            return False
    return True


def containers(pod: Obj) -> Iterator[tuple[str, Obj]]:
    """("container"|"initContainer", container) of one pod spec."""
    for c in pod.get("initContainers", []):
        yield "initContainer", c
    for c in pod.get("containers", []):
        yield "container", c


def all_containers(docs: tuple[Obj, ...]) -> Iterator[tuple[str, Obj, Obj]]:
    """(where, pod spec, container) over every pod of every rendered object."""
    for obj in docs:
        for where, pod in pod_specs(obj):
            for role, c in containers(pod):
                yield f"{where}:{role}/{c['name']}", pod, c


# ---------------------------------------------------------------- KServe CRD schema


@cache
def isvc_crd() -> Obj:
    (crd,) = load_all(ISVC_CRD.read_text(encoding="utf-8"))
    return crd


def strict_schema(schema: Obj) -> Obj:
    """The CRD's openAPIV3Schema with unknown fields rejected, as the API server does under
    ``kubectl apply``'s default ``--validate=strict`` (server-side field validation): every
    object that lists ``properties`` and neither sets ``additionalProperties`` nor
    ``x-kubernetes-preserve-unknown-fields`` gets ``additionalProperties: false``."""
    out = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(out)
    return out


def crd_version_schema(crd: Obj, version: str) -> Obj:
    for v in crd["spec"]["versions"]:
        if v["name"] == version:
            return v["schema"]["openAPIV3Schema"]
    raise KeyError(f"{crd['metadata']['name']} has no version {version}")
