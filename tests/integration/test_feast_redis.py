"""Feast as the cluster runs it: feature_store.cluster.yaml with the real Redis online store.

Apply and materialize into Redis, then read the entity features back in process
(``online_rows``) and through the real KServe transformer server. Each test uses its own Feast
project (Feast's Redis keys are the serialized entity key followed by the project name), and
``store.teardown()`` deletes its keys afterwards.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import pytest
import redis
import yaml
from tests.support.servers import free_port, post, setup_model, start, write_config
from tests.support.services import redis_prefix

from mlplatform.config import PlatformConfig
from mlplatform.features import online_rows, open_store, refresh_online
from mlplatform.features.definitions import feature_view_name

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.services]


def connection_string(url: str) -> str:
    """``redis://host:port/db`` → Feast's ``host:port,db=N[,password=...]``."""
    parts = urlsplit(url)
    text = f"{parts.hostname}:{parts.port or 6379},db={parts.path.lstrip('/') or 0}"
    return text + (f",password={parts.password}" if parts.password else "")


def redis_keys(url: str, project: str) -> list[bytes]:
    client = redis.Redis.from_url(url)
    try:
        return list(client.scan_iter(match=f"*{project}"))
    finally:
        client.close()


@pytest.fixture(scope="module")
def cluster_feast(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """A registered credit-risk model whose features live in Redis, a predictor and the
    transformer reading the cluster YAML; Redis keys of the test project deleted afterwards."""
    mp = pytest.MonkeyPatch()
    tmp = tmp_path_factory.mktemp("redis")
    with redis_prefix() as (url, project):
        cfg, _, model = setup_model(tmp, "credit-risk")
        cluster = yaml.safe_load((ROOT / "feature_repo/feature_store.cluster.yaml").read_text())
        cluster["project"] = project  # unique per run: no key collides with another test
        store_yaml = tmp / "feature_repo" / "feature_store.redis.yaml"
        store_yaml.write_text(yaml.safe_dump(cluster))
        mp.setenv("FEAST_REGISTRY_PATH", str(tmp / "feast-registry" / "registry.db"))
        mp.setenv("REDIS_CONNECTION_STRING", connection_string(url))
        cfg = cfg.with_overrides(feature_store={"store_yaml": str(store_yaml)})
        store = open_store(cfg)
        procs: list[tuple[subprocess.Popen[bytes], int]] = []
        try:
            store = refresh_online(cfg)  # apply + materialize into Redis
            materialized = redis_keys(url, project)  # before any test writes a row of its own
            procs = _servers(cfg, tmp)
            yield {"materialized": materialized,
                   "cfg": cfg, "store": store, "model": model, "url": url, "project": project,
                   "port": procs[1][1], "data": pd.read_parquet(cfg.data_path)}  # fmt: skip
        finally:
            for proc, _ in procs:
                proc.terminate()
                proc.wait(10)
            store.refresh_registry()
            store.teardown()
            leftover = redis_keys(url, project)
            mp.undo()
    assert leftover == [], f"feast teardown left {len(leftover)} Redis keys of {project}"


def _servers(cfg: PlatformConfig, tmp: Path) -> list[tuple[subprocess.Popen[bytes], int]]:
    """Predictor and transformer processes (they inherit the Redis environment) and ports."""
    path = write_config(cfg, tmp / "credit-risk.redis.yaml")
    common = ["--config", str(path), "--model_name", "credit-risk"]
    pred, tr = free_port(), free_port()
    procs = [(start("predictor", common, pred, tmp / "pred.log"), pred)]
    host = ["--predictor_host", f"127.0.0.1:{pred}"]
    procs.append((start("transformer", common + host, tr, tmp / "tr.log"), tr))
    return procs


def test_materialize_writes_every_entity_to_redis(cluster_feast: dict) -> None:
    # Counted right after materialize: test_a_row_written_only_to_redis_is_served adds a key
    # of its own, and the tests run in random order.
    keys = cluster_feast["materialized"]
    assert len(keys) == cluster_feast["data"]["applicant_id"].nunique()


def test_online_rows_come_from_redis(cluster_feast: dict) -> None:
    cfg, data = cluster_feast["cfg"], cluster_feast["data"]
    ids = [int(i) for i in data["applicant_id"].head(5)]
    rows = online_rows(cluster_feast["store"], cfg, ids)
    latest = data.sort_values(cfg.timestamp).groupby(cfg.entity).tail(1).set_index(cfg.entity)
    expected = latest.loc[ids, list(cfg.feature_names)].reset_index()
    pd.testing.assert_frame_equal(rows, expected, check_dtype=False)


def test_transformer_reads_entity_features_from_redis(cluster_feast: dict) -> None:
    data, model = cluster_feast["data"], cluster_feast["model"]
    ids = [int(i) for i in data["applicant_id"].head(5)]
    r = post(
        f"http://127.0.0.1:{cluster_feast['port']}/v1/models/credit-risk:predict",
        json={"instances": [{"applicant_id": i} for i in ids]},
    )
    assert r.status_code == 200, r.text
    expected = model.predict(data[data["applicant_id"].isin(ids)])
    np.testing.assert_allclose(r.json()["predictions"], expected, rtol=1e-12)


def test_a_row_written_only_to_redis_is_served(cluster_feast: dict) -> None:
    """An id that exists nowhere but in Redis: the transformer can only have read it there."""
    cfg, data, model = cluster_feast["cfg"], cluster_feast["data"], cluster_feast["model"]
    row = data.head(1).assign(applicant_id=990_001)
    cluster_feast["store"].write_to_online_store(feature_view_name(cfg), row)
    r = post(
        f"http://127.0.0.1:{cluster_feast['port']}/v1/models/credit-risk:predict",
        json={"instances": [{"applicant_id": 990_001}]},
    )
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["predictions"], model.predict(row), rtol=1e-12)
