"""The real Feast (embedded: SQLite online store, Parquet offline store) in temporary folders."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
import yaml
from feast import FeatureStore
from feast.types import Float64, Int64, String

from mlplatform.config import PlatformConfig, load_config
from mlplatform.errors import FeatureRepoError, UnknownEntityError
from mlplatform.features import (
    apply,
    feature_store,
    materialize,
    online_rows,
    training_frame,
)
from mlplatform.features.definitions import (
    definitions,
    feature_view_name,
    label_view_name,
    project_configs,
)
from mlplatform.stages import generate_data

ROOT = Path(__file__).resolve().parents[2]
REPO = ROOT / "feature_repo"
EMBEDDED_YAML = REPO / "feature_store.yaml"
CLUSTER_YAML = REPO / "feature_store.cluster.yaml"
ROWS = 300


def small(name: str, data_dir: Path, rows: int = ROWS) -> PlatformConfig:
    cfg = load_config(ROOT / f"configs/{name}.yaml", env={})
    return cfg.with_overrides(data={"data_dir": str(data_dir), "rows": rows})


def materialize_all(store: FeatureStore, frames: list[pd.DataFrame], ts: str) -> None:
    materialize(store, end=max(f[ts].max() for f in frames).to_pydatetime() + timedelta(seconds=1))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """house-price and credit-risk data, applied and materialized once for the module."""
    tmp = tmp_path_factory.mktemp("feast")
    cfgs = {n: small(n, tmp / "data") for n in ("house-price", "credit-risk")}
    frames = {n: pd.read_parquet(generate_data(c)) for n, c in cfgs.items()}
    store = feature_store(tmp / "repo", EMBEDDED_YAML)
    apply(store, list(cfgs.values()))
    materialize_all(store, list(frames.values()), "event_timestamp")
    return {"store": store, "cfgs": cfgs, "frames": frames}


def test_online_rows_return_the_materialized_values(world: dict) -> None:
    cfg, df = world["cfgs"]["house-price"], world["frames"]["house-price"]
    ids = [7, 3, 250]
    got = online_rows(world["store"], cfg, ids)
    want = df.set_index(cfg.entity).loc[ids, list(cfg.feature_names)].reset_index()
    assert list(got.columns) == [cfg.entity, *cfg.feature_names]
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


def test_online_rows_never_serve_the_label(world: dict) -> None:
    cfg = world["cfgs"]["credit-risk"]
    got = online_rows(world["store"], cfg, [1])
    assert cfg.target not in got.columns
    assert list(got.columns) == [cfg.entity, *cfg.feature_names]


def test_unknown_entity_is_a_clear_error(world: dict) -> None:
    cfg = world["cfgs"]["house-price"]
    with pytest.raises(UnknownEntityError, match=r"house_id \[0, 9999\]") as info:
        online_rows(world["store"], cfg, [1, 0, 2, 9999])
    assert info.value.missing == [0, 9999]


def test_training_frame_has_features_and_target_in_entity_order(world: dict) -> None:
    cfg, df = world["cfgs"]["house-price"], world["frames"]["house-price"]
    events = df[[cfg.entity, cfg.timestamp]].sample(frac=1.0, random_state=0)
    got = training_frame(world["store"], cfg, events)
    assert list(got.columns) == [cfg.entity, cfg.timestamp, *cfg.feature_names, cfg.target]
    assert len(got) == ROWS
    want = df.set_index(cfg.entity).loc[events[cfg.entity]].reset_index()[got.columns]
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


def test_training_frame_needs_entity_and_timestamp(world: dict) -> None:
    cfg = world["cfgs"]["credit-risk"]
    with pytest.raises(Exception, match="event_timestamp"):
        training_frame(world["store"], cfg, pd.DataFrame({cfg.entity: [1]}))


def _house_rows(cfg: PlatformConfig, rows: list[tuple[int, str, float]]) -> pd.DataFrame:
    """One row per (id, time, value): every numeric feature and the target carry ``value``."""
    return pd.DataFrame(
        {
            cfg.entity: [r[0] for r in rows],
            cfg.timestamp: pd.to_datetime([r[1] for r in rows], utc=True),
            **{
                f.name: [r[2] if f.kind == "numeric" else f"v{r[2]:g}" for r in rows]
                for f in cfg.features
            },
            cfg.target: [r[2] * 1e9 for r in rows],
        }
    )


def test_point_in_time_join_never_leaks_a_later_value(tmp_path: Path) -> None:
    cfg = small("house-price", tmp_path / "data")
    t1, t2 = "2026-02-01", "2026-03-01"
    source = _house_rows(cfg, [(1, t1, 1.0), (1, t2, 2.0), (2, t1, 5.0)])
    (tmp_path / "data").mkdir()
    source.to_parquet(tmp_path / "data" / "house-price.parquet", index=False)
    store = feature_store(tmp_path / "repo", EMBEDDED_YAML)
    apply(store, [cfg])
    # before t1; exactly t1; between; an hour, a second and a microsecond before t2 (a
    # look-ahead of that much would leak t2's value); exactly t2; after t2; the last request
    # twice (Feast's Dask store would drop the first and collapse the pair: the adapter must not).
    asks = [
        (1, "2026-01-15"),
        (1, t1),
        (1, "2026-02-15"),
        (1, "2026-02-28 23:00:00"),
        (1, "2026-02-28 23:59:59"),
        (1, "2026-02-28 23:59:59.999999"),
        (1, t2),
        (1, "2026-04-01"),
    ] + [(2, "2026-09-01")] * 2
    events = pd.DataFrame(
        {
            cfg.entity: [a[0] for a in asks],
            cfg.timestamp: pd.to_datetime([a[1] for a in asks], format="ISO8601"),
        }
    )  # naive times are UTC
    got = training_frame(store, cfg, events)
    assert got[cfg.entity].tolist() == [a[0] for a in asks]
    want = [1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 5.0, 5.0]  # t1 <= t < t2 → t1's value
    assert got["area_m2"].tolist()[1:] == want
    assert got[cfg.target].tolist()[1:] == [v * 1e9 for v in want]  # the label joins alike
    assert got["district"].tolist()[1:] == [f"v{v:g}" for v in want]
    assert got.iloc[0][[*cfg.feature_names, cfg.target]].isna().all()  # nothing known before t1
    materialize_all(store, [source], cfg.timestamp)
    assert online_rows(store, cfg, [1])["area_m2"].tolist() == [2.0]  # online: the latest


def test_definitions_take_names_and_types_from_the_configs() -> None:
    types = {"numeric": Float64, "categorical": String}
    for cfg in project_configs(ROOT):
        views = {o.name: o for o in definitions([cfg]) if type(o).__name__ == "FeatureView"}
        features = views[feature_view_name(cfg)]
        assert [(f.name, f.dtype) for f in features.features] == [
            (s.name, types[s.kind]) for s in cfg.features
        ]
        label = views[label_view_name(cfg)]
        assert [f.name for f in label.features] == [cfg.target]
        assert label.features[0].dtype == (Int64 if cfg.task == "classification" else Float64)
        assert features.online and not label.online


def test_feast_apply_cli_runs_clean_on_the_committed_repo(tmp_path: Path) -> None:
    """``feast apply`` on feature_repo/ itself, with the registry and SQLite redirected to tmp."""
    config = yaml.safe_load(EMBEDDED_YAML.read_text())
    config["registry"] = str(tmp_path / "registry.db")
    config["online_store"]["path"] = str(tmp_path / "online_store.db")
    fs_yaml = tmp_path / "feature_store.yaml"
    fs_yaml.write_text(yaml.safe_dump(config))
    env = {
        **os.environ,
        "MLPLATFORM__DATA__DATA_DIR": str(tmp_path / "data"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    feast = [sys.executable, "-m", "feast.cli.cli", "-c", str(REPO), "-f", str(fs_yaml), "apply"]
    out = subprocess.run(feast, capture_output=True, text=True, env=env, check=False)
    assert out.returncode == 0, out.stderr
    store = feature_store(tmp_path, fs_yaml)
    services = {s.name for s in store.list_feature_services()}
    assert services == {c.model_name for c in project_configs(ROOT)}
    source = store.get_data_source("house_price_source")
    assert source.path == str(tmp_path / "data" / "house-price.parquet")


def test_cluster_variant_shares_everything_but_the_stores() -> None:
    embedded = yaml.safe_load(EMBEDDED_YAML.read_text())
    cluster = yaml.safe_load(CLUSTER_YAML.read_text())
    assert cluster["online_store"]["type"] == "redis"
    for key in ("project", "provider", "offline_store", "entity_key_serialization_version"):
        assert cluster[key] == embedded[key]


def test_cluster_variant_names_unset_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FEAST_REGISTRY_PATH", raising=False)
    monkeypatch.delenv("REDIS_CONNECTION_STRING", raising=False)
    with pytest.raises(FeatureRepoError, match="FEAST_REGISTRY_PATH, REDIS_CONNECTION_STRING"):
        feature_store(REPO, CLUSTER_YAML)


def test_cluster_variant_loads_a_redis_online_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FEAST_REGISTRY_PATH", str(tmp_path / "registry.db"))
    monkeypatch.setenv("REDIS_CONNECTION_STRING", "redis-master.mlplatform:6379")
    try:
        import redis  # noqa: F401
    except ImportError:  # the embedded install has no Redis client: a clear error, not a trace
        with pytest.raises(FeatureRepoError, match="redis"):
            feature_store(REPO, CLUSTER_YAML)
        return
    store = feature_store(REPO, CLUSTER_YAML, online_timeout_s=0.5)
    assert store.config.online_store.connection_string == (
        "redis-master.mlplatform:6379,socket_connect_timeout=0.5,socket_timeout=0.5,retry=null"
    )  # bounded waits, no client retries: a Redis outage is a quick 503


def test_redis_connection_string_settings_win(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("redis")
    monkeypatch.setenv("FEAST_REGISTRY_PATH", str(tmp_path / "registry.db"))
    monkeypatch.setenv("REDIS_CONNECTION_STRING", "redis:6379,db=1,socket_timeout=7")
    store = feature_store(REPO, CLUSTER_YAML)
    assert store.config.online_store.connection_string == (
        "redis:6379,db=1,socket_timeout=7,socket_connect_timeout=1.0,retry=null"
    )


def test_missing_store_yaml_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FeatureRepoError, match="no feature store config"):
        feature_store(tmp_path)


def test_a_model_never_applied_is_a_clear_error(tmp_path: Path) -> None:
    store = feature_store(tmp_path / "repo", EMBEDDED_YAML)
    apply(store, [small("house-price", tmp_path / "data")])
    with pytest.raises(FeatureRepoError, match="'credit-risk' is not registered"):
        online_rows(store, small("credit-risk", tmp_path / "data"), [1])
