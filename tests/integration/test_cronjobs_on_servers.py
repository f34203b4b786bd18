"""The monitor and retrain CronJobs exactly as the chart renders them (values-kind.yaml), run as
processes against real servers: PostgreSQL 15 (the stores' database, created by the chart's own
hook SQL), a real ``mlflow server`` (PostgreSQL backend, artifacts proxied to S3), S3 on moto's
server, and an EMULATED KFP API (``tests/support/kfp_api.py``: no KFP backend runs here).

What is taken from the rendered chart: each container's command and environment, with the
Secrets generated the way ``scripts/deploy.sh`` does (random values; only the stores' username
is made unique per run, so parallel runs never share a role) and the mounted config files from
the rendered ConfigMap. What stands in for the cluster: the Service names resolve to the
loopback servers (the mapping below; a name it does not know fails the test), each pod's
``/tmp`` emptyDir is a fresh folder, and ``/app`` (the image's copy of the repository) is this
checkout.

The story: a data version is pushed to the S3 remote, a champion trained on it is registered,
drifted traffic lands in the payload log; the monitor CronJob writes one alert; two retrain
CronJob pods race for it and exactly one KFP run is created, named after the model and the
alert's global id, carrying the data version and no store password; the pipeline's data step,
given that run's config and the data Secret as ``deploy.sh`` writes it, fetches exactly that
version from S3.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
from tests.support.chart import RELEASE, container_env, helm, load_all, template_args
from tests.support.kfp_api import KfpApi, kfp_api
from tests.support.mlflow_server import S3, mlflow_server, moto_s3, register_version
from tests.support.services import POSTGRES_URL, fresh_postgres, need, with_database

from mlplatform.config import PlatformConfig, load_config
from mlplatform.core.training import generate
from mlplatform.monitoring.alert_store import AlertStore
from mlplatform.orchestration.training_pipeline import DATA_SECRET_ENV
from mlplatform.serving.payloads import PayloadRecord, PayloadStore
from mlplatform.stages import data_step
from mlplatform.stages.data import data_source, push_data

pytestmark = [pytest.mark.services, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
MODEL = "house-price"
BIN = Path(sys.executable).parent


@dataclass
class Cluster:
    tmp: Path
    s3: S3
    kfp: KfpApi
    md5: str
    docs: list[dict[str, Any]]
    secrets: dict[str, dict[str, str]]
    hosts: dict[str, str]

    def workload(self, kind: str, name: str) -> dict[str, Any]:
        (obj,) = [d for d in self.docs if d["kind"] == kind and d["metadata"]["name"] == name]
        return obj

    def cronjob_container(self, component: str) -> dict[str, Any]:
        job = self.workload("CronJob", f"{RELEASE}-{component}-{MODEL}")
        (c,) = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
        return c

    def pod_env(self, container: dict[str, Any], pod_tmp: Path) -> dict[str, str]:
        """The container's env with the cluster's names resolved to this machine."""
        env = container_env(container, self.secrets)
        out = {k: self.resolve(v, pod_tmp) for k, v in env.items()}
        leftover = {k: v for k, v in out.items() if "svc.cluster.local" in v or f"{RELEASE}-" in v}
        assert not leftover, f"a Service name this test does not map: {leftover}"
        return out

    def resolve(self, value: str, pod_tmp: Path) -> str:
        for name, here in self.hosts.items():
            value = value.replace(name, here)
        if value.startswith("/tmp"):
            value = str(pod_tmp) + value[len("/tmp") :]
        return value.replace("/etc/mlplatform", str(self.tmp / "etc"))

    def run(self, component: str, pod: str) -> subprocess.CompletedProcess[str]:
        """One pod of the component's CronJob: its command and env, a fresh /tmp."""
        container = self.cronjob_container(component)
        pod_tmp = self.tmp / "pods" / pod / "tmp"
        pod_tmp.mkdir(parents=True)
        env = {"PATH": f"{BIN}:{os.environ['PATH']}", **self.pod_env(container, pod_tmp)}
        cmd = [self.resolve(a, pod_tmp) for a in container["command"]]
        workdir = self.tmp / "pods" / pod / "app"
        workdir.mkdir()
        return subprocess.run(
            cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=600
        )


def _generated_secrets(stores_user: str) -> dict[str, dict[str, str]]:
    """The Secrets scripts/deploy.sh creates: fixed usernames, random everything else."""
    rnd = secrets.token_hex
    return {
        "mlplatform-postgresql": {"username": "mlflow", "password": rnd(32)},
        "mlplatform-stores": {"username": stores_user, "password": rnd(32)},
        "mlplatform-s3": {"access-key-id": rnd(32), "secret-access-key": rnd(32)},
        "mlplatform-redis": {"password": rnd(32)},
    }


def _render(*sets: str) -> list[dict[str, Any]]:
    return load_all(helm(*template_args("values-kind.yaml", *sets)).stdout)


def _create_stores_database(cluster: Cluster) -> None:
    """The chart's hook Job (its psql script and env), as this server's admin user: the chart's
    admin is the bundled PostgreSQL's superuser, here it is the machine's."""
    job = cluster.workload("Job", f"{RELEASE}-stores-db")
    (c,) = job["spec"]["template"]["spec"]["containers"]
    env = container_env(c, cluster.secrets)
    admin = urlsplit(POSTGRES_URL)
    env.update(PGHOST=admin.hostname or "127.0.0.1", PGPORT=str(admin.port or 5432))
    env.update(PGUSER=admin.username or "postgres", PGDATABASE=admin.path.lstrip("/"))
    env["PATH"] = os.environ["PATH"]
    done = subprocess.run(
        [*c["command"], *c["args"]], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


def _drop_stores_database(database: str, user: str) -> None:
    import psycopg

    admin = with_database(POSTGRES_URL, urlsplit(POSTGRES_URL).path.lstrip("/"), "postgresql")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        conn.execute(f'DROP ROLE IF EXISTS "{user}"')


def _push_data_version(tmp: Path, s3: S3) -> str:
    """`make cluster-data`: generate the dataset and push it to the release's DVC remote."""
    cfg = load_config(ROOT / "configs" / f"{MODEL}.yaml", env={})
    cfg = cfg.with_overrides(data={"rows": 1200, "data_dir": str(tmp / "laptop-data")})
    from mlplatform.stages import generate_data

    generate_data(cfg)
    with pytest.MonkeyPatch.context() as mp:
        for k, v in {**s3.env, "AWS_ENDPOINT_URL": s3.endpoint}.items():
            mp.setenv(k, v)
        md5, _ = push_data(cfg, remote=f"s3://{s3.bucket}/dvc")
    return md5


def _register_champion(cluster: Cluster, tracking_uri: str) -> None:
    """A champion trained on the pushed rows (same generator settings), via the server."""
    tmp = cluster.tmp / "register"
    tmp.mkdir()
    cfg = load_config(ROOT / "configs" / f"{MODEL}.yaml", env={}).with_overrides(
        artifacts_dir=str(tmp / "artifacts"),  # type: ignore[arg-type]
        data={"rows": 1200, "data_dir": str(tmp / "data")},
        train={"epochs": 200},
        explain={"background_rows": 400},
        registry={"tracking_uri": tracking_uri, "artifact_root": "mlflow-artifacts:/mlplatform"},
    )
    register_version(cfg, tmp, {"data_md5": cluster.md5, "trigger": "manual"})


def _log_drifted_traffic(cluster: Cluster, rows: int = 300) -> None:
    """Requests from a shifted world, written to the stores' database as the payload sink
    writes them (the sink's rendered store URL), in the window the monitor will judge."""
    store_url = cluster.pod_env(cluster.cronjob_container("monitor"), cluster.tmp)[
        "MLPLATFORM__SERVE__PAYLOAD_STORE"
    ]
    cfg = load_config(ROOT / "configs" / f"{MODEL}.yaml", env={})
    df = generate(cfg.data.model_copy(update={"shift": 1.5, "seed": 7, "rows": rows}))
    now = time.time()
    start = now // 3600 * 3600  # this hour, and the last one: whichever the monitor judges
    times = [start - 3600 + i * 3000 / rows for i in range(rows)]
    times += [start + i * max(now - start - 1, 0.0) / rows for i in range(rows)]
    records = df[list(cfg.feature_names)].to_dict("records")
    with PayloadStore(store_url) as store:
        for i, t in enumerate(times):
            body = orjson.dumps({"instances": [records[i % rows]]}).decode()
            reply = orjson.dumps({"predictions": [1.0]}).decode()
            store.log(
                PayloadRecord(f"r{i}", t, MODEL, "stable", "1", "predict", 200, 2.0, 1, body, reply)
            )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    need(POSTGRES_URL, 5432, "PostgreSQL")
    tmp = tmp_path_factory.mktemp("cronjobs")
    database, user = f"mlp_stores_{uuid.uuid4().hex[:10]}", f"mlp_user_{uuid.uuid4().hex[:10]}"
    with (
        moto_s3() as s3,
        fresh_postgres() as mlflow_db,
        mlflow_server(mlflow_db, s3, tmp / "mlflow") as tracking,
        kfp_api() as kfp,
    ):
        md5 = _push_data_version(tmp, s3)
        sets = (
            f"stores.database={database}",
            f"artifactStore.bucket={s3.bucket}",
            f"models.{MODEL}.dataVersion={md5}",
        )
        tracking_host = urlsplit(tracking).netloc
        hosts = {
            f"http://{RELEASE}-minio:9000": s3.endpoint,
            f"{RELEASE}-mlflow.{RELEASE}.svc.cluster.local:5000": tracking_host,
            f"{RELEASE}-postgresql:5432": "127.0.0.1:5432",
            "http://ml-pipeline.kubeflow.svc.cluster.local:8888": kfp.url,
        }
        docs = _render(*sets)
        c = Cluster(tmp, s3, kfp, md5, docs, _generated_secrets(user), hosts)
        (config_map,) = [d for d in docs if d["metadata"]["name"] == f"{RELEASE}-config"]
        (tmp / "etc").mkdir()
        for name, body in config_map["data"].items():
            (tmp / "etc" / name).write_text(body, encoding="utf-8")
        try:
            _create_stores_database(c)
            _register_champion(c, tracking)
            _log_drifted_traffic(c)
            yield c
        finally:
            _drop_stores_database(database, user)


def _alert_store(cluster: Cluster) -> AlertStore:
    env = cluster.pod_env(cluster.cronjob_container("retrain"), cluster.tmp)
    return AlertStore(env["MLPLATFORM__MONITOR__ALERT_STORE"])


def test_monitor_cronjob_writes_one_alert_and_retrain_cronjobs_start_one_run(
    cluster: Cluster,
) -> None:
    first = cluster.run("monitor", "monitor-1")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "ALERT" in first.stdout and "written" in first.stdout, first.stdout
    again = cluster.run("monitor", "monitor-2")  # the next schedule, same window
    assert again.returncode == 0 and "already recorded" in again.stdout, again.stdout
    (alert,) = [a for a in _alert_store(cluster).claimable() if a.model == MODEL]
    # The report went to the artifact bucket, not to a pod's disk.
    listed = cluster.s3.client().list_objects_v2(Bucket=cluster.s3.bucket, Prefix="monitoring/")
    assert any(o["Key"].endswith(".json") for o in listed.get("Contents", [])), listed

    with ThreadPoolExecutor(2) as pool:  # two retrain pods at once
        done = list(pool.map(lambda pod: cluster.run("retrain", pod), ["retrain-1", "retrain-2"]))
    for d in done:
        assert d.returncode == 0, d.stdout + d.stderr
    assert sum("started" in d.stdout for d in done) == 1, [d.stdout for d in done]
    (run,) = cluster.kfp.runs
    assert run["display_name"] == f"alert-{MODEL}-{alert.alert_id}"
    later = cluster.run("retrain", "retrain-3")  # the next schedule: nothing left to start
    assert later.returncode == 0 and len(cluster.kfp.runs) == 1, later.stdout
    stored = _alert_store(cluster).get(alert.alert_id)
    assert stored is not None and stored.run_id == run["run_id"]

    params = cluster.kfp.run_parameters(run)
    assert params["trigger"] == run["display_name"]
    cfg = PlatformConfig.from_json(params["config_json"])
    assert (cfg.data.version, cfg.data.remote) == (cluster.md5, f"s3://{cluster.s3.bucket}/dvc")
    for secret in cluster.secrets["mlplatform-stores"].values():
        assert secret not in params["config_json"]
    _data_step_as_a_pipeline_pod(cluster, cfg)


def _data_step_as_a_pipeline_pod(cluster: Cluster, cfg: PlatformConfig) -> None:
    """The run's data step: its config as KFP hands it over, the S3 env from the data Secret
    deploy.sh writes (keys → variables as the compiled pipeline maps them), a fresh /tmp and
    the image's /app; no other variable of this process's S3 setup."""
    pod_tmp = cluster.tmp / "pods" / "kfp-data" / "tmp"
    pod_tmp.mkdir(parents=True)
    text = cfg.to_json().replace('"/tmp', f'"{pod_tmp}').replace('"/app', f'"{ROOT}')
    pod_cfg = PlatformConfig.from_json(text)
    s3_keys = cluster.secrets["mlplatform-s3"]
    secret = {**s3_keys, "endpoint-url": cluster.s3.endpoint}
    with pytest.MonkeyPatch.context() as mp:
        for var in ("MLFLOW_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
            mp.delenv(var, raising=False)
        for key, var in DATA_SECRET_ENV.items():
            mp.setenv(var, secret[key])
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        info = data_step(pod_cfg, pod_tmp / "outputs" / "dataset.parquet")
    assert info["data_md5"] == cluster.md5 and info["rows"] == 1200
    assert Path(info["data_path"]).is_relative_to(pod_tmp)  # fetched, not the laptop's file
    assert data_source(pod_cfg) == (
        f"s3://{cluster.s3.bucket}/dvc/files/md5/{cluster.md5[:2]}/{cluster.md5[2:]}"
    )
    assert json.loads(pod_cfg.to_json())["feature_store"]["repo_dir"].startswith(str(pod_tmp))
