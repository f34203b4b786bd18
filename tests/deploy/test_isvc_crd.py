"""Every rendered InferenceService validates against the openAPIV3Schema of the real KServe
v0.20.0 CRD (read in place from ../shared/crds), with unknown fields rejected as the API server
does; broken ones are rejected.

Three layers, each what a cluster would apply:
1. the CRD schema, made strict (``strict_schema``): types, enums, required fields, no unknown
   fields (``kubectl apply`` validates fields strictly by default since Kubernetes 1.27);
2. ``metadata`` as a Kubernetes ObjectMeta, and each component's pod fields as a 1.32 PodSpec
   (kubernetes-validate, strict): the CRD leaves ``metadata`` open;
3. the admission checks the schema does not express (``admission_errors``): the CRD has no
   bounds on ``canaryTrafficPercent``; KServe's and Knative's webhooks reject a share outside
   0-100 at apply time. The chart's values.schema.json rejects it earlier, at render time.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate.utils as kv
import pytest
from k8s_render import (
    ISVC_CRD,
    ROOT,
    VALUES_FILES,
    crd_version_schema,
    isvc_crd,
    render,
    render_error,
    strict_schema,
)

COMPONENTS = ("predictor", "transformer", "explainer")
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


@pytest.fixture(scope="module")
def validator(crd_dir: Path) -> jsonschema.Draft7Validator:
    crd = isvc_crd()
    assert crd["spec"]["group"] == "serving.kserve.io"
    assert [v["name"] for v in crd["spec"]["versions"] if v["served"]] == ["v1beta1"]
    schema = strict_schema(crd_version_schema(crd, "v1beta1"))
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def schema_errors(validator: jsonschema.Draft7Validator, isvc: dict) -> list[str]:
    return [
        f"{'.'.join(str(p) for p in e.absolute_path)}: {e.message}"
        for e in validator.iter_errors(isvc)
    ]


def pod_spec_fields() -> set[str]:
    defs = kv.schema_contents(
        "kubernetes-json-schema/v1.32.0-local-strict/_definitions.json", "1.32"
    )
    return set(defs["$defs"]["io.k8s.api.core.v1.PodSpec"]["properties"])


def k8s_errors(isvc: dict) -> list[str]:
    """metadata as ObjectMeta, each component's pod fields as a PodSpec (1.32, strict)."""
    shells: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": isvc["metadata"]}
    ]
    fields = pod_spec_fields()
    for component in COMPONENTS:
        if component in isvc["spec"]:
            spec = {k: v for k, v in isvc["spec"][component].items() if k in fields}
            shells.append(
                {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": component}, "spec": spec}
            )
    errors = []
    for shell in shells:
        try:
            kv.validate(shell, "1.32.0", strict=True)
        except kv.ValidationError as exc:
            errors.append(f"{shell['kind']}: {'.'.join(map(str, exc.path))}: {exc.message}")
    return errors


def admission_errors(isvc: dict) -> list[str]:
    """What KServe's and Knative's admission webhooks reject and the CRD schema does not."""
    errors = []
    name = isvc["metadata"]["name"]
    if not DNS_1035.match(name) or len(name) > 63:
        errors.append(f"metadata.name {name!r} is not a DNS-1035 label")
    for component in COMPONENTS:
        spec = isvc["spec"].get(component)
        if spec is None:
            continue
        pct = spec.get("canaryTrafficPercent")
        if pct is not None and not 0 <= pct <= 100:
            errors.append(f"spec.{component}.canaryTrafficPercent {pct} is not in [0, 100]")
        low, high = spec.get("minReplicas", 1), spec.get("maxReplicas")
        if low < 0 or (high is not None and high < low):
            errors.append(f"spec.{component}: minReplicas {low} > maxReplicas {high}")
    return errors


def isvcs(values_file: str = "values.yaml", *sets: str) -> list[dict]:
    return [o for o in render(values_file, *sets) if o["kind"] == "InferenceService"]


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_rendered_inference_services_match_the_kserve_crd(
    validator: jsonschema.Draft7Validator, values_file: str
) -> None:
    docs = isvcs(values_file) + isvcs(
        values_file,
        "models.house-price.canaryTrafficPercent=10",
        "models.house-price.modelVersion=2",
    )
    assert len(docs) == 4
    for isvc in docs:
        assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
        assert schema_errors(validator, isvc) == []
        assert k8s_errors(isvc) == []
        assert admission_errors(isvc) == []


def broken(change: str) -> dict:
    isvc = copy.deepcopy(isvcs()[0])
    predictor = isvc["spec"]["predictor"]
    if change == "unknown-field":
        predictor["containers"][0]["imagePullPolicyy"] = "Always"
    elif change == "unknown-component-field":
        predictor["canaryTrafficPercentage"] = 10
    elif change == "wrong-type":
        predictor["minReplicas"] = "one"
    elif change == "wrong-type-canary":
        predictor["canaryTrafficPercent"] = "ten"
    elif change == "bad-enum":
        predictor["logger"]["mode"] = "everything"
    elif change == "missing-required":
        del isvc["spec"]["predictor"]
    return isvc


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ("unknown-field", "spec.predictor.containers.0"),
        ("unknown-component-field", "spec.predictor"),
        ("wrong-type", "spec.predictor.minReplicas"),
        ("wrong-type-canary", "spec.predictor.canaryTrafficPercent"),
        ("bad-enum", "spec.predictor.logger.mode"),
        ("missing-required", "spec"),
    ],
)
def test_broken_inference_service_is_rejected_by_the_crd_schema(
    validator: jsonschema.Draft7Validator, change: str, where: str
) -> None:
    errors = schema_errors(validator, broken(change))
    assert errors, f"{change} was accepted"
    assert any(e.startswith(f"{where}:") for e in errors), errors


def test_canary_percent_out_of_range_is_rejected(validator: jsonschema.Draft7Validator) -> None:
    isvc = copy.deepcopy(isvcs()[0])
    isvc["spec"]["predictor"]["canaryTrafficPercent"] = 150
    # The CRD itself puts no bound on it (int64): a schema-only check would let it through...
    assert schema_errors(validator, isvc) == []
    bound = crd_version_schema(isvc_crd(), "v1beta1")["properties"]["spec"]["properties"]
    assert "maximum" not in bound["predictor"]["properties"]["canaryTrafficPercent"]
    # ...so the admission rule catches a hand-edited object, and the chart never renders one.
    assert admission_errors(isvc) == ["spec.predictor.canaryTrafficPercent 150 is not in [0, 100]"]
    assert "less than or equal to 100" in render_error(
        "values.yaml", "models.house-price.canaryTrafficPercent=150"
    )


def test_pod_fields_are_checked_against_kubernetes() -> None:
    isvc = copy.deepcopy(isvcs()[0])
    isvc["spec"]["predictor"]["containers"][0]["resources"]["limits"]["cpu"] = {"cores": 1}
    assert any("resources.limits.cpu" in e for e in k8s_errors(isvc))
    isvc = copy.deepcopy(isvcs()[0])
    isvc["metadata"]["labels"]["bad"] = 3
    assert any("labels" in e for e in k8s_errors(isvc))


def test_the_crd_is_read_in_place_not_copied() -> None:
    assert not ISVC_CRD.resolve().is_relative_to(ROOT.resolve())
    for folder in ("helm", "manifests", "tests", "scripts"):
        assert not list((ROOT / folder).rglob("serving.kserve.io_*.yaml")), folder
