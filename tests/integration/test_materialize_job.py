"""The materialize CronJob exactly as the chart renders it (values-kind.yaml), run as a process
against the real Redis and S3 on moto's server: it fetches the model's data version from the
DVC remote and fills Redis, where the features of every entity can then be read back.

Taken from the rendered chart: the container's command and environment (Secrets resolved from
values made here) and the mounted config file. Stand-ins for the cluster: the Service names map
to the loopback servers (an unmapped one fails the test), ``/tmp``, ``/feast`` (the registry
volume) and ``/etc/mlplatform`` are fresh folders, and ``/app`` is a copy of this checkout's
``feature_repo`` whose Feast project is made unique, so no key collides with another test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
import pytest
from tests.support.chart import RELEASE, container_env, helm, load_all, template_args
from tests.support.mlflow_server import S3, TEST_KEYS, moto_s3
from tests.support.services import redis_prefix

from mlplatform.config import load_config
from mlplatform.features import online_rows, open_store
from mlplatform.stages import generate_data
from mlplatform.stages.data import push_data

pytestmark = [pytest.mark.services, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
MODEL = "house-price"


def _push_version(tmp: Path, s3: S3) -> tuple[str, Path]:
    """`make cluster-data`: generate the dataset and push it to the DVC remote; (md5, file)."""
    cfg = load_config(ROOT / "configs" / f"{MODEL}.yaml", env={})
    cfg = cfg.with_overrides(data={"rows": 800, "data_dir": str(tmp / "laptop")})
    generate_data(cfg)
    with pytest.MonkeyPatch.context() as mp:
        for k, v in {**s3.env, "AWS_ENDPOINT_URL": s3.endpoint}.items():
            mp.setenv(k, v)
        md5, _ = push_data(cfg, remote=f"s3://{s3.bucket}/dvc")
    return md5, cfg.data_path


def _rendered(s3: S3, md5: str, password: str | None) -> tuple[dict[str, Any], str]:
    """The CronJob's container and the config file the chart mounts for it."""
    sets = [f"artifactStore.bucket={s3.bucket}", f"models.{MODEL}.dataVersion={md5}"]
    if password is None:
        sets.append("redis.auth.existingSecret=")  # the test Redis has no AUTH
    docs = load_all(helm(*template_args("values-kind.yaml", *sets)).stdout)
    (job,) = [d for d in docs if d["metadata"]["name"] == f"{RELEASE}-materialize-{MODEL}"]
    (c,) = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    (cm,) = [d for d in docs if d["metadata"]["name"] == f"{RELEASE}-config"]
    return c, cm["data"][f"{MODEL}.yaml"]


def _pod(tmp: Path, project: str, config_text: str) -> dict[str, Path]:
    """The pod's folders: /tmp, /feast, /etc/mlplatform, and /app with the Feast repo."""
    paths = {p: tmp / "pod" / p.strip("/").replace("/", "-") for p in ("/tmp", "/feast", "/app")}
    paths["/etc/mlplatform"] = tmp / "pod" / "etc"
    for p in paths.values():
        p.mkdir(parents=True)
    (paths["/etc/mlplatform"] / f"{MODEL}.yaml").write_text(config_text)
    repo = paths["/app"] / "feature_repo"
    shutil.copytree(ROOT / "feature_repo", repo, ignore=shutil.ignore_patterns("data"))
    cluster = repo / "feature_store.cluster.yaml"
    cluster.write_text(cluster.read_text().replace("project: mlplatform", f"project: {project}"))
    return paths


def test_the_rendered_job_fills_redis_from_the_data_version(tmp_path: Path) -> None:
    with moto_s3() as s3, redis_prefix() as (url, project):
        redis = urlsplit(url)
        md5, pushed = _push_version(tmp_path, s3)
        container, config_text = _rendered(s3, md5, redis.password)
        paths = _pod(tmp_path, project, config_text)
        secrets = {
            "mlplatform-s3": {
                "access-key-id": TEST_KEYS["AWS_ACCESS_KEY_ID"],
                "secret-access-key": TEST_KEYS["AWS_SECRET_ACCESS_KEY"],
            },
            "mlplatform-redis": {"password": redis.password or ""},
        }
        hosts = {
            f"http://{RELEASE}-minio:9000": s3.endpoint,
            # every pod's env names MLflow; this job must not need it: a closed port
            f"http://{RELEASE}-mlflow.mlplatform.svc.cluster.local:5000": "http://127.0.0.1:9",
            f"{RELEASE}-redis:6379": f"{redis.hostname}:{redis.port or 6379}"
            f",db={redis.path.lstrip('/') or 0}",
        }

        def resolve(value: str) -> str:
            for name, here in hosts.items():
                value = value.replace(name, here)
            for mount, here in sorted(paths.items(), key=lambda kv: -len(kv[0])):
                if value.startswith(mount):
                    return str(here) + value[len(mount) :]
            return value

        env = {k: resolve(v) for k, v in container_env(container, secrets).items()}
        assert not [v for v in env.values() if f"{RELEASE}-" in v], env
        env["PATH"] = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
        done = subprocess.run(
            [resolve(a) for a in container["command"]],
            cwd=paths["/app"],  # the image's WORKDIR
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"versions/{md5}/{MODEL}.parquet" in done.stdout

        # read it back as the transformer does: the same registry, YAML and Redis
        with pytest.MonkeyPatch.context() as mp:
            for k in ("FEAST_REGISTRY_PATH", "REDIS_CONNECTION_STRING"):
                mp.setenv(k, env[k])
            cfg = load_config(paths["/etc/mlplatform"] / f"{MODEL}.yaml", env=env)
            cfg = cfg.with_overrides(
                feature_store={"repo_dir": str(paths["/app"] / "feature_repo")}
            )
            store = open_store(cfg)
            try:
                data = pd.read_parquet(pushed)
                ids = [int(i) for i in data[cfg.entity].head(5)]
                rows = online_rows(store, cfg, ids)
                latest = data.sort_values(cfg.timestamp).groupby(cfg.entity).tail(1)
                expected = latest.set_index(cfg.entity).loc[ids, list(cfg.feature_names)]
                pd.testing.assert_frame_equal(rows, expected.reset_index(), check_dtype=False)
            finally:
                store.teardown()
