"""The materialize CronJobs as the chart renders them: one per model with a data version, the
Feast client environment, the data version to fetch with S3 credentials from Secrets, the
registry volume writable, restricted like every other pod, admitted to Redis and MinIO only."""

from __future__ import annotations

import pytest
from k8s_render import (
    K8S_VERSIONS,
    RELEASE,
    ROOT,
    VALUES_FILES,
    name_of,
    pod_labels,
    pod_specs,
    render,
    render_error,
    selects,
)

from mlplatform.config import load_config
from mlplatform.image import IMAGE

MD5 = "0123456789abcdef0123456789abcdef"
VERSIONED = (f"models.house-price.dataVersion={MD5}", f"models.credit-risk.dataVersion={'f' * 32}")
CRONJOB = f"CronJob/{RELEASE}-materialize-house-price"

every_values_file = pytest.mark.parametrize("values_file", VALUES_FILES)


def cronjobs(docs: tuple[dict, ...]) -> dict[str, dict]:
    return {name_of(o): o for o in docs if "materialize" in o["metadata"]["name"]}


def pod_of(docs: tuple[dict, ...], where: str = CRONJOB) -> dict:
    (pod,) = [p for o in docs for w, p in pod_specs(o) if w == where]
    return pod


def admitted_to(docs: tuple[dict, ...], component: str, port: int) -> set[str]:
    """The rendered pods a NetworkPolicy's podSelector peer admits to ``component`` on ``port``."""
    target = {
        "app.kubernetes.io/name": "mlplatform",
        "app.kubernetes.io/instance": RELEASE,
        "app.kubernetes.io/component": component,
    }
    peers = [
        peer["podSelector"]
        for p in docs
        if p["kind"] == "NetworkPolicy" and selects(p["spec"]["podSelector"], target)
        for rule in p["spec"].get("ingress", [])
        if port in [q["port"] for q in rule.get("ports", [])]
        for peer in rule["from"]
        if set(peer) == {"podSelector"}
    ]
    return {
        where
        for obj in docs
        for where, labels in pod_labels(obj)
        if any(selects(peer, labels) for peer in peers)
    }


@every_values_file
def test_one_cronjob_per_model_with_a_data_version(values_file: str) -> None:
    docs = render(values_file, *VERSIONED)
    assert set(cronjobs(docs)) == {
        f"CronJob/{RELEASE}-materialize-{m}" for m in ("credit-risk", "house-price")
    }
    (c,) = pod_of(docs)["containers"]
    assert c["image"] == IMAGE
    assert c["command"] == [
        "mlplatform",
        "features",
        "materialize",
        "--config",
        "/etc/mlplatform/house-price.yaml",
    ]
    assert cronjobs(docs)[CRONJOB]["spec"]["concurrencyPolicy"] == "Forbid"


@every_values_file
def test_it_fetches_the_models_data_version_and_writes_the_shared_feast_stores(
    values_file: str,
) -> None:
    """The config the job's process loads (its --config file + the rendered env): the data
    version from the pipeline runs' remote, the cluster Feast YAML, everything else in /tmp."""
    (c,) = pod_of(render(values_file, *VERSIONED))["containers"]
    env = {e["name"]: e for e in c["env"]}
    plain = {k: e["value"] for k, e in env.items() if "value" in e}
    cfg = load_config(ROOT / "configs" / "house-price.yaml", env=plain)
    assert (cfg.data.remote, cfg.data.version) == ("s3://mlflow/dvc", MD5)
    assert str(cfg.data.data_dir).startswith("/tmp/")
    assert str(cfg.feature_store.store_yaml) == "/app/feature_repo/feature_store.cluster.yaml"
    assert plain["FEAST_REGISTRY_PATH"] == "/feast/registry.db"
    assert plain["REDIS_CONNECTION_STRING"] == f"{RELEASE}-redis:6379,password=$(REDIS_PASSWORD)"
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "mlplatform-redis"
    # the S3 client of the DVC remote: the endpoint mlplatform.versioning reads, keys by Secret
    from mlplatform.versioning.remote import ENDPOINT_VARS

    assert [plain[v] for v in ENDPOINT_VARS if v in plain] == [f"http://{RELEASE}-minio:9000"]
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert env[key]["valueFrom"]["secretKeyRef"]["name"] == "mlplatform-s3"


def test_the_data_remote_is_the_one_pipeline_runs_fetch_from() -> None:
    docs = render("values-kind.yaml", *VERSIONED, "data.remotePrefix=versions")
    (cm,) = [o for o in docs if name_of(o) == f"ConfigMap/{RELEASE}-pipeline"]
    (c,) = pod_of(docs)["containers"]
    remote = {e["name"]: e.get("value") for e in c["env"]}["MLPLATFORM__DATA__REMOTE"]
    assert remote == cm["data"]["MLPLATFORM__DATA__REMOTE"] == "s3://mlflow/versions"


@every_values_file
def test_the_registry_volume_is_mounted_writable(values_file: str) -> None:
    """``feast apply`` writes the registry the Feast server and the transformers read."""
    docs = render(values_file, *VERSIONED)
    pod = pod_of(docs)
    (c,) = pod["containers"]
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert not mounts["/feast"].get("readOnly")
    assert mounts["/etc/mlplatform"]["readOnly"] is True and "/tmp" in mounts
    volumes = {v["name"]: v for v in pod["volumes"]}
    claim = volumes[mounts["/feast"]["name"]]["persistentVolumeClaim"]
    assert claim == {"claimName": f"{RELEASE}-feast-registry"}
    assert f"PersistentVolumeClaim/{claim['claimName']}" in {name_of(o) for o in docs}


@every_values_file
def test_it_is_restricted_like_the_other_cronjobs(values_file: str) -> None:
    docs = render(values_file, *VERSIONED)
    pod = pod_of(docs)
    monitor = pod_of(docs, f"CronJob/{RELEASE}-monitor-house-price")
    assert pod["securityContext"] == monitor["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    (c,) = pod["containers"]
    sc = c["securityContext"]
    assert sc == monitor["containers"][0]["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert c["resources"]["requests"] and c["resources"]["limits"]


@every_values_file
def test_network_policies_admit_it_to_redis_and_minio_only(values_file: str) -> None:
    docs = render(values_file, *VERSIONED)
    jobs = set(cronjobs(docs))
    assert jobs <= admitted_to(docs, "redis", 6379)
    assert jobs <= admitted_to(docs, "minio", 9000)
    assert not jobs & admitted_to(docs, "postgresql", 5432)
    # without a materialize job the Redis policy admits exactly its readers, as before
    assert admitted_to(render(values_file), "redis", 6379) == {
        f"Deployment/{RELEASE}-feast",
        *(f"InferenceService/{m}.transformer" for m in ("credit-risk", "house-price")),
    }


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_the_cronjobs_and_policies_pass_kubernetes_validate_strict(version: str) -> None:
    """The default renders have no data version, so tests/deploy/test_k8s_schema.py never sees
    these objects: validated here, rendered with one."""
    import kubernetes_validate.utils as kv

    for values_file in VALUES_FILES:
        docs = render(values_file, *VERSIONED)
        objects = [*cronjobs(docs).values(), *(o for o in docs if o["kind"] == "NetworkPolicy")]
        for obj in objects:
            kv.validate(obj, version, strict=True)


@pytest.mark.parametrize(
    "sets",
    [
        (),  # no model has a data version: nothing says which bytes to serve
        ("materialize.enabled=false", *VERSIONED),
        ("feast.enabled=false", *VERSIONED),
        ("models.house-price.enabled=false", f"models.house-price.dataVersion={MD5}"),
    ],
)
def test_absent_without_a_data_version_or_when_disabled(sets: tuple[str, ...]) -> None:
    docs = render("values-kind.yaml", *sets)
    assert cronjobs(docs) == {}
    assert not any("materialize" in w for w in admitted_to(docs, "minio", 9000))


def test_only_the_models_with_a_data_version_and_regardless_of_serving() -> None:
    docs = render(
        "values-kind.yaml", f"models.house-price.dataVersion={MD5}", "serving.enabled=false"
    )
    assert set(cronjobs(docs)) == {CRONJOB}


def test_values_schema_rejects_unknown_materialize_keys() -> None:
    err = render_error("values.yaml", "materialize.surprise=1")
    assert "Additional property surprise is not allowed" in err
    assert "schedule" in render_error("values.yaml", "materialize.schedule=hourly")
