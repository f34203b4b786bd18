"""The chart lints strictly and renders for every values file; values.schema.json rejects bad
values before anything reaches a cluster."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import yaml
from k8s_render import (
    CHART,
    RELEASE,
    ROOT,
    SERVED_VERSIONS,
    VALUES_FILES,
    helm,
    name_of,
    render,
    render_error,
)

MODELS = ("credit-risk", "house-price")


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_helm_lint_strict(values_file: str) -> None:
    sets = [a for s in SERVED_VERSIONS for a in ("--set", s)]
    out = helm(
        "lint", "--strict", str(CHART), "--values", str(CHART / values_file), *sets, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 chart(s) failed" in out.stdout


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_helm_template_renders_every_component(values_file: str) -> None:
    kinds = Counter(obj["kind"] for obj in render(values_file))
    n = len(MODELS)
    assert kinds["InferenceService"] == n
    assert kinds["CronJob"] == 3 * n  # monitor, retrain and payload-prune per model
    assert kinds["Role"] == kinds["RoleBinding"] == n  # one rollout identity per model
    # MLflow, Redis, Feast, payload sink + one rollout controller per model.
    assert kinds["Deployment"] == 4 + n
    assert kinds["StatefulSet"] == 2  # PostgreSQL, MinIO
    assert kinds["NetworkPolicy"] >= 8
    assert "Secret" not in kinds, "defaults must reference existing Secrets, not create them"
    names = [name_of(o) for o in render(values_file)]
    assert len(names) == len(set(names)), "two objects share a kind and name"


def test_configs_come_from_the_repository_configs() -> None:
    """helm/mlplatform/configs links to configs/: one config, read by the ConfigMap."""
    link = CHART / "configs"
    assert link.is_symlink() and link.resolve() == (ROOT / "configs").resolve()
    (cm,) = [o for o in render() if name_of(o) == f"ConfigMap/{RELEASE}-config"]
    for model in MODELS:
        text = cm["data"][f"{model}.yaml"]
        assert text == (ROOT / "configs" / f"{model}.yaml").read_text(encoding="utf-8")
        assert yaml.safe_load(text)["model_name"] == model


def test_chart_app_version_is_the_image_tag() -> None:
    from mlplatform.image import IMAGE_TAG

    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    assert chart["appVersion"] == IMAGE_TAG


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("models.house-price.canaryTrafficPercent=150",), "less than or equal to 100"),
        (("models.house-price.canaryTrafficPercent=-5",), "greater than or equal to 0"),
        (("models.house-price.canaryTrafficPercent=ten",), "canaryTrafficPercent"),
        (("models.house-price.modelVersion=champion",), "modelVersion"),
        (("models.house-price.modelVersion=0",), "modelVersion"),
        (("image.tag=latest",), "image.tag"),
        (("minio.image.digest=",), "minio.image.digest"),
        (("serving.predictor.resources.limits=null",), "limits is required"),
        (("containerSecurityContext.readOnlyRootFilesystem=false",), "readOnlyRootFilesystem"),
        (("podSecurityContext.runAsNonRoot=false",), "runAsNonRoot"),
        (("surprise=1",), "Additional property surprise is not allowed"),
        (("models.House_Price.enabled=true",), "House_Price"),
    ],
)
def test_values_schema_rejects(sets: tuple[str, ...], message: str) -> None:
    err = render_error("values.yaml", *sets)
    assert "values don't meet the specifications of the schema" in err
    assert message in err, err


def test_serving_without_a_pinned_version_is_refused_with_what_to_do() -> None:
    """An InferenceService needs the version it serves (no alias: see the predictor)."""
    err = render_error("values.yaml", "models.house-price.modelVersion=")
    assert "models.house-price.modelVersion is required" in err and "make deploy" in err
    unserved = render("values.yaml", "serving.enabled=false", "models.house-price.modelVersion=")
    assert not [o for o in unserved if o["kind"] == "InferenceService"]


def test_values_schema_is_strict_json_schema() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    assert schema["$schema"].startswith("http://json-schema.org/draft-07/")
    assert schema["additionalProperties"] is False
    pct = schema["definitions"]["model"]["properties"]["canaryTrafficPercent"]
    assert (pct["minimum"], pct["maximum"]) == (0, 100)


def test_canary_traffic_percent_is_rendered_only_when_set() -> None:
    def percents(docs: tuple[dict, ...]) -> dict[str, object]:
        return {
            o["metadata"]["name"]: o["spec"]["predictor"].get("canaryTrafficPercent")
            for o in docs
            if o["kind"] == "InferenceService"
        }

    assert percents(render()) == {m: None for m in MODELS}
    canary = render(
        "values.yaml",
        "models.house-price.canaryTrafficPercent=20",
        "models.house-price.modelVersion=2",
    )
    assert percents(canary) == {"house-price": 20, "credit-risk": None}
    assert (
        percents(render("values.yaml", "models.credit-risk.canaryTrafficPercent=0"))["credit-risk"]
        == 0
    )


def test_serving_disabled_deploys_only_the_shared_services() -> None:
    kinds = Counter(o["kind"] for o in render("values.yaml", "serving.enabled=false"))
    assert not {"InferenceService", "CronJob", "Role", "RoleBinding"} & set(kinds)
    assert kinds["Deployment"] == 4 and kinds["StatefulSet"] == 2


def test_secrets_only_from_user_supplied_values() -> None:
    docs = render(
        "values.yaml",
        "postgresql.auth.existingSecret=",
        "postgresql.auth.password=from-the-command-line",
    )
    (secret,) = [o for o in docs if o["kind"] == "Secret"]
    assert secret["metadata"]["name"] == f"{RELEASE}-postgresql"
    err = render_error("values.yaml", "postgresql.auth.existingSecret=")
    assert "postgresql.auth: set existingSecret" in err


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("mlflow.enabled=false",), "mlflow.externalTrackingUri is required"),
        (("postgresql.enabled=false",), "postgresql.external.host is required"),
        (("minio.enabled=false",), "artifactStore.endpoint is required"),
        (("redis.enabled=false",), "redis.external.host is required"),
    ],
)
def test_external_services_need_their_address(sets: tuple[str, ...], message: str) -> None:
    assert message in render_error("values.yaml", *sets)


def test_external_services_replace_the_bundled_ones() -> None:
    docs = render(
        "values.yaml",
        "postgresql.enabled=false",
        "postgresql.external.host=db.example.internal",
        "minio.enabled=false",
        "artifactStore.endpoint=https://s3.example.internal",
        "redis.enabled=false",
        "redis.external.host=redis.example.internal",
    )
    names = {name_of(o) for o in docs}
    assert not {f"StatefulSet/{RELEASE}-postgresql", f"StatefulSet/{RELEASE}-minio"} & names
    assert f"Deployment/{RELEASE}-redis" not in names
    (mlflow,) = [o for o in docs if name_of(o) == f"Deployment/{RELEASE}-mlflow"]
    env = {e["name"]: e for e in mlflow["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "@db.example.internal:5432/mlflow" in env["MLFLOW_BACKEND_STORE_URI"]["value"]
    assert env["MLFLOW_S3_ENDPOINT_URL"]["value"] == "https://s3.example.internal"
