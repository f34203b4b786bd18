"""The loop's state on the cluster, as the chart renders it: the payload log and the alert store in
one PostgreSQL database of its own (`stores`), reports in the artifact bucket, nothing on a volume
the pods cannot share and nothing written under the image root. The last test runs the rendered
database hook against the real PostgreSQL (a ``services`` test)."""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from k8s_render import (
    RELEASE,
    ROOT,
    VALUES_FILES,
    containers,
    name_of,
    pod_labels,
    pod_specs,
    render,
    render_error,
    selects,
)

from mlplatform.config import load_config
from mlplatform.image import IMAGE

MODELS = ("credit-risk", "house-price")
STORES = ("MLPLATFORM__SERVE__PAYLOAD_STORE", "MLPLATFORM__MONITOR__ALERT_STORE")
URL = "postgresql+psycopg://$(STORES_USER):$(STORES_PASSWORD)@{host}/mlplatform"
CLUSTER_URL = URL.format(host=f"{RELEASE}-postgresql:5432")
#: The workloads that read or write a store, and the one that creates its database.
STORE_USERS = {
    f"Deployment/{RELEASE}-payload-sink",
    *(
        f"CronJob/{RELEASE}-{job}-{m}"
        for job in ("monitor", "retrain", "payload-prune")
        for m in MODELS
    ),
}
HOOK = f"Job/{RELEASE}-stores-db"
EXTERNAL = ("postgresql.enabled=false", "postgresql.external.host=db.example.internal")

every_values_file = pytest.mark.parametrize("values_file", VALUES_FILES)


def pods(docs: tuple[dict, ...]) -> dict[str, dict]:
    return {where: pod for obj in docs for where, pod in pod_specs(obj)}


def env_list(pod: dict) -> list[dict]:
    (c,) = pod["containers"]
    return list(c.get("env", []))


def plain_env(pod: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in env_list(pod) if "value" in e}


def by_name(docs: tuple[dict, ...]) -> dict[str, dict]:
    return {name_of(o): o for o in docs}


# ---------------------------------------------------------------- store URLs


@every_values_file
def test_every_store_url_is_the_stores_database_with_secret_credentials(values_file: str) -> None:
    """Each store URL names the one database, and every $(VAR) it expands is a secretKeyRef of
    the stores Secret declared earlier in the same env list (the kubelet expands only those)."""
    seen = set()
    for where, pod in pods(render(values_file)).items():
        for _, c in containers(pod):
            env = c.get("env", [])
            for i, e in enumerate(env):
                if e["name"] not in STORES:
                    continue
                seen.add(where)
                assert e["value"] == CLUSTER_URL, where
                earlier = {x["name"]: x for x in env[:i]}
                for var in re.findall(r"\$\((\w+)\)", e["value"]):
                    ref = earlier[var]["valueFrom"]["secretKeyRef"]
                    assert ref["name"] == "mlplatform-stores", (where, var)
    assert seen == STORE_USERS


@every_values_file
def test_the_sink_and_the_cronjobs_get_both_stores(values_file: str) -> None:
    all_pods = pods(render(values_file))
    for where in STORE_USERS:
        env = plain_env(all_pods[where])
        assert {name: env[name] for name in STORES} == dict.fromkeys(STORES, CLUSTER_URL), where


def test_an_external_postgresql_holds_the_stores_too() -> None:
    docs = render("values.yaml", *EXTERNAL, "postgresql.external.port=6432")
    url = URL.format(host="db.example.internal:6432")
    for where in STORE_USERS:
        assert plain_env(pods(docs)[where])["MLPLATFORM__SERVE__PAYLOAD_STORE"] == url, where
    job = by_name(docs)[HOOK]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert f"ConfigMap/{RELEASE}-postgresql-initdb" not in by_name(docs)


def test_the_stores_database_can_be_left_to_its_admin() -> None:
    docs = render("values.yaml", *EXTERNAL, "stores.createDatabase=false")
    assert HOOK not in by_name(docs)
    err = render_error("values.yaml", *EXTERNAL, "stores.auth.existingSecret=")
    assert "stores.createDatabase with an external PostgreSQL" in err


def test_the_stores_secret_only_from_user_supplied_values() -> None:
    docs = render("values.yaml", "stores.auth.existingSecret=", "stores.auth.password=from-cli")
    (secret,) = [o for o in docs if o["kind"] == "Secret"]
    assert secret["metadata"]["name"] == f"{RELEASE}-stores"
    assert set(secret["data"]) == {"username", "password"}
    assert "stores.auth: set existingSecret" in render_error(
        "values.yaml", "stores.auth.existingSecret="
    )


# ---------------------------------------------------------------- no shared volume, no image root


@every_values_file
def test_no_volume_holds_the_payloads(values_file: str) -> None:
    docs = render(values_file)
    claims = {o["metadata"]["name"] for o in docs if o["kind"] == "PersistentVolumeClaim"}
    assert claims == {f"{RELEASE}-feast-registry"}
    for where in STORE_USERS:
        pod = pods(docs)[where]
        assert not [v for v in pod["volumes"] if "persistentVolumeClaim" in v], where
        assert "/data" not in {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}


@every_values_file
def test_the_sink_runs_several_replicas_rolling(values_file: str) -> None:
    sink = by_name(render(values_file))[f"Deployment/{RELEASE}-payload-sink"]
    assert sink["spec"]["replicas"] == 2
    assert sink["spec"]["strategy"]["type"] == "RollingUpdate"
    scaled = by_name(render(values_file, "payloadSink.replicas=5"))
    assert scaled[f"Deployment/{RELEASE}-payload-sink"]["spec"]["replicas"] == 5
    assert "replicas" in render_error(values_file, "payloadSink.replicas=0")


def writes_outside_tmp(value: str) -> bool:
    """A location is fine as /tmp/..., or a URL of a shared service (never a SQLite file)."""
    return not (value.startswith("/tmp/") or re.match(r"^(s3|postgresql\+psycopg)://", value))


@every_values_file
def test_no_container_writes_under_the_image_root(values_file: str) -> None:
    docs = render(values_file)
    for where, pod in pods(docs).items():
        for _, c in containers(pod):
            for name, value in ((e["name"], e.get("value", "")) for e in c.get("env", [])):
                if re.match(r"^MLPLATFORM__.*(_DIR|_STORE)$", name):
                    assert not writes_outside_tmp(value), f"{where}: {name}={value}"


@every_values_file
def test_every_mlplatform_process_writes_to_tmp_or_to_the_shared_services(values_file: str) -> None:
    """The effective config of each mlplatform process (its --config file + the rendered
    overrides, loaded as the process loads them) writes nowhere under the image root."""
    checked = set()
    for where, pod in pods(render(values_file)).items():
        for _, c in containers(pod):
            argv = [*c.get("command", []), *c.get("args", [])]
            if c["image"] != IMAGE or "--config" not in argv:
                continue
            model = Path(argv[argv.index("--config") + 1]).stem
            env = {e["name"]: e["value"] for e in c.get("env", []) if "value" in e}
            cfg = load_config(ROOT / "configs" / f"{model}.yaml", env=env)
            assert str(cfg.artifacts_dir).startswith("/tmp/"), where
            assert str(cfg.data.data_dir).startswith("/tmp/"), where
            if where in STORE_USERS:
                checked.add(where)
                for value in (cfg.serve.payload_store, cfg.monitor.alert_store):
                    assert value == CLUSTER_URL, where
            if "monitor" in where:
                assert cfg.monitor.reports_dir == "s3://mlflow/monitoring", where
    assert checked == STORE_USERS


@every_values_file
def test_the_monitor_writes_its_reports_to_the_artifact_bucket(values_file: str) -> None:
    for model in MODELS:
        pod = pods(render(values_file))[f"CronJob/{RELEASE}-monitor-{model}"]
        env = {e["name"]: e for e in env_list(pod)}
        assert env["MLFLOW_S3_ENDPOINT_URL"]["value"] == f"http://{RELEASE}-minio:9000"
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            assert env[key]["valueFrom"]["secretKeyRef"]["name"] == "mlplatform-s3"


# ---------------------------------------------------------------- network policies


def ingress_peers(docs: tuple[dict, ...], component: str, port: int) -> list[dict]:
    """The ``from`` peers of every NetworkPolicy admitting to ``component``'s pods on ``port``."""
    target = {
        "app.kubernetes.io/name": "mlplatform",
        "app.kubernetes.io/instance": RELEASE,
        "app.kubernetes.io/component": component,
    }
    return [
        peer
        for p in docs
        if p["kind"] == "NetworkPolicy" and selects(p["spec"]["podSelector"], target)
        for rule in p["spec"].get("ingress", [])
        if port in [q["port"] for q in rule.get("ports", [])]
        for peer in rule["from"]
    ]


def admitted_to(docs: tuple[dict, ...], component: str, port: int) -> set[str]:
    """The rendered pods (all in the release namespace) admitted by a podSelector-only peer."""
    peers = [
        peer["podSelector"]
        for peer in ingress_peers(docs, component, port)
        if set(peer) == {"podSelector"}
    ]
    return {
        where
        for obj in docs
        for where, labels in pod_labels(obj)
        if any(selects(peer, labels) for peer in peers)
    }


def namespaces_admitted_to(docs: tuple[dict, ...], component: str, port: int) -> set[str]:
    """The namespaces all of whose pods a namespaceSelector-only peer admits."""
    return {
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for peer in ingress_peers(docs, component, port)
        if set(peer) == {"namespaceSelector"}
    }


@every_values_file
def test_postgresql_admits_exactly_its_clients(values_file: str) -> None:
    docs = render(values_file)
    assert admitted_to(docs, "postgresql", 5432) == {
        f"Deployment/{RELEASE}-mlflow",
        HOOK,
        *STORE_USERS,
    }
    assert admitted_to(docs, "minio", 9000) == {
        f"Deployment/{RELEASE}-mlflow",
        f"Job/{RELEASE}-minio-bucket",
        *(f"CronJob/{RELEASE}-monitor-{m}" for m in MODELS),
    }
    assert namespaces_admitted_to(docs, "postgresql", 5432) == set()


@every_values_file
def test_minio_admits_the_kfp_pipeline_pods(values_file: str) -> None:
    """The pipeline's data step fetches its data version from the DVC remote in MinIO; its pods
    run in kfp.namespace, as MLflow's other clients from there do."""
    docs = render(values_file)
    assert namespaces_admitted_to(docs, "minio", 9000) == {"kubeflow"}
    assert namespaces_admitted_to(docs, "mlflow", 5000) == {"kubeflow"}
    moved = render(values_file, "kfp.namespace=pipelines")
    assert namespaces_admitted_to(moved, "minio", 9000) == {"pipelines"}
    assert namespaces_admitted_to(docs, "minio", 5432) == set()


# ---------------------------------------------------------------- the hook creating the database


@every_values_file
def test_the_stores_hook_is_a_restricted_pod_like_the_others(values_file: str) -> None:
    """The pod-security and resource rules of test_policies.py walk every rendered pod; the hook
    Job is one of them (helm template renders hooks), with its own token-less ServiceAccount."""
    docs = render(values_file)
    job = by_name(docs)[HOOK]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,pre-upgrade"
    pod = pods(docs)[HOOK]
    assert pod["serviceAccountName"] == f"{RELEASE}-stores-db"
    assert (
        by_name(docs)[f"ServiceAccount/{RELEASE}-stores-db"]["automountServiceAccountToken"]
        is False
    )
    env = {e["name"]: e for e in env_list(pod)}
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "mlplatform-postgresql"
    assert env["STORES_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "mlplatform-stores"
    assert env["PGHOST"]["value"] == f"{RELEASE}-postgresql"


def hook_script(docs: tuple[dict, ...]) -> str:
    (c,) = pods(docs)[HOOK]["containers"]
    assert c["command"] == ["sh", "-ec"]
    return str(c["args"][0])


def test_initdb_runs_the_hooks_sql_on_the_first_start() -> None:
    docs = render()
    sql = by_name(docs)[f"ConfigMap/{RELEASE}-postgresql-initdb"]["data"]["stores.sql"]
    assert sql.strip() in hook_script(docs)
    pg = pods(docs)[f"StatefulSet/{RELEASE}-postgresql"]
    mounts = {m["mountPath"]: m["name"] for m in pg["containers"][0]["volumeMounts"]}
    assert mounts["/docker-entrypoint-initdb.d"] == "initdb"
    assert {"STORES_USER", "STORES_PASSWORD", "STORES_DATABASE"} <= {
        e["name"] for e in env_list(pg)
    }


@pytest.mark.services
def test_the_hook_creates_the_stores_database_on_a_real_postgresql() -> None:
    """The rendered hook script, run twice with its env pointed at the real PostgreSQL (as the
    admin), creates the user and the database once; the stores then migrate in it as that user."""
    from urllib.parse import urlsplit

    import psycopg
    from tests.support.services import POSTGRES_URL, need

    from mlplatform.stores import migrate, open_engine

    need(POSTGRES_URL, 5432, "PostgreSQL")
    if not shutil.which("psql") or not shutil.which("pg_isready"):
        pytest.skip("psql/pg_isready not installed (the hook runs them from the postgres image)")
    server = urlsplit(POSTGRES_URL)
    user, db, password = (f"mlp_{uuid.uuid4().hex[:10]}" for _ in range(3))
    env = {
        "PATH": "/usr/bin:/bin",
        "PGHOST": server.hostname or "127.0.0.1",
        "PGPORT": str(server.port or 5432),
        "PGUSER": server.username or "postgres",
        "PGPASSWORD": server.password or "",
        "PGDATABASE": server.path.lstrip("/") or "postgres",
        "STORES_USER": user,
        "STORES_PASSWORD": password,
        "STORES_DATABASE": db,
    }
    admin = f"postgresql://{server.netloc}/{env['PGDATABASE']}"
    script = hook_script(render())
    try:
        for _ in range(2):  # install, then an upgrade: idempotent
            out = subprocess.run(["sh", "-ec", script], env=env, capture_output=True, text=True)
            assert out.returncode == 0, out.stderr
        url = CLUSTER_URL.replace("$(STORES_USER)", user).replace("$(STORES_PASSWORD)", password)
        url = url.replace(
            f"{RELEASE}-postgresql:5432/mlplatform", f"{env['PGHOST']}:{env['PGPORT']}/{db}"
        )
        engine = open_engine(url)
        try:
            migrate(engine, "payloads")
            migrate(engine, "alerts")
            with engine.connect() as conn:
                owner = conn.exec_driver_sql(
                    "SELECT pg_get_userbyid(datdba) FROM pg_database"
                    " WHERE datname = current_database()"
                ).scalar()
            assert owner == user
        finally:
            engine.dispose()
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            conn.execute(f'DROP ROLE IF EXISTS "{user}"')


@every_values_file
def test_the_payload_prune_runs_per_model_with_the_retention_from_values(
    values_file: str,
) -> None:
    docs = render(values_file, "payloadPrune.retentionDays=7", "payloadPrune.maxRows=500000")
    found = pods(docs)
    for model in MODELS:
        pod = found[f"CronJob/{RELEASE}-payload-prune-{model}"]
        (c,) = pod["containers"]
        config = f"/etc/mlplatform/{model}.yaml"
        assert c["command"] == ["mlplatform", "payloads", "prune", "--config", config]
        env = plain_env(pod)
        assert env["MLPLATFORM__SERVE__PAYLOAD_RETENTION_DAYS"] == "7"
        assert env["MLPLATFORM__SERVE__PAYLOAD_MAX_ROWS"] == "500000"
        # the values the command reads back are valid for the config
        cfg = load_config(
            f"configs/{model}.yaml",
            env={
                k: v
                for k, v in env.items()
                if k.startswith("MLPLATFORM__SERVE__PAYLOAD_") and not k.endswith("STORE")
            },
        )
        assert cfg.serve.payload_retention_days == 7 and cfg.serve.payload_max_rows == 500000
    default = pods(render(values_file))[f"CronJob/{RELEASE}-payload-prune-{MODELS[0]}"]
    assert "MLPLATFORM__SERVE__PAYLOAD_MAX_ROWS" not in plain_env(default)  # no cap
