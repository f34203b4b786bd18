"""MLflow as the cluster runs it: a real ``mlflow server`` (PostgreSQL backend store, artifacts
proxied to S3 on moto), reached only over HTTP with ``mlflow-artifacts:/`` as the artifact
root, as the chart configures it; and the monitor writing its reports to ``s3://``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
from tests.support.mlflow_server import S3, mlflow_server, moto_s3, register_version
from tests.support.services import fresh_postgres

from mlplatform.config import PlatformConfig, load_config
from mlplatform.core.model import LinearModel
from mlplatform.core.training import generate, split_frame
from mlplatform.monitoring.monitor import reference_frame, run_monitor, validation_error
from mlplatform.registry.mlflow_registry import CHAMPION, Registry
from mlplatform.serving.payloads import PayloadRecord, PayloadStore

pytestmark = [pytest.mark.services, pytest.mark.slow]
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
HOUR = 3600.0


@pytest.fixture(scope="module")
def s3() -> Iterator[S3]:
    with moto_s3() as s3:
        yield s3


@pytest.fixture(scope="module")
def tracking_uri(s3: S3, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("mlflow-server")
    with fresh_postgres() as db, mlflow_server(db, s3, workdir) as url:
        yield url


@pytest.fixture
def s3_env(s3: S3, monkeypatch: pytest.MonkeyPatch) -> S3:
    """This process with the S3 environment the chart gives the monitor CronJob."""
    for key, value in s3.env.items():
        monkeypatch.setenv(key, value)
    return s3


def _config(tmp: Path, tracking_uri: str, reports_dir: str) -> PlatformConfig:
    return load_config("configs/house-price.yaml", env={}).with_overrides(
        artifacts_dir=str(tmp / "artifacts"),  # type: ignore[arg-type]
        data={"rows": 1000, "data_dir": str(tmp / "data")},
        train={"epochs": 200},
        explain={"background_rows": 400},
        registry={"tracking_uri": tracking_uri, "artifact_root": "mlflow-artifacts:/mlplatform"},
        monitor={"alert_store": f"sqlite:///{tmp}/alerts.db", "reports_dir": reports_dir},
    )


def _log_traffic(cfg: PlatformConfig, db: Path, shift: float, rows: int = 300) -> None:
    """One hour of requests from a world moved by ``shift``, logged as the router does."""
    df = generate(cfg.data.model_copy(update={"shift": shift, "seed": 7, "rows": rows}))
    with PayloadStore(db) as store:
        for i, row in enumerate(df[list(cfg.feature_names)].to_dict("records")):
            body = orjson.dumps({"instances": [row]}).decode()
            reply = orjson.dumps({"predictions": [1.0]}).decode()
            store.log(
                PayloadRecord(
                    f"r{i}",
                    T0 + i,
                    cfg.model_name,
                    "stable",
                    "1",
                    "predict",
                    200,
                    2.0,
                    1,
                    body,
                    reply,
                )
            )


def _s3_keys(s3: S3) -> list[str]:
    listed = s3.client().list_objects_v2(Bucket=s3.bucket)
    return [str(o["Key"]) for o in listed.get("Contents", [])]


def test_register_load_reference_and_monitor_through_the_server(
    tracking_uri: str, s3_env: S3, tmp_path: Path
) -> None:
    cfg = _config(tmp_path, tracking_uri, str(tmp_path / "reports"))
    version, model_path, sample = register_version(cfg, tmp_path)
    reg = Registry(cfg.registry)
    assert reg.by_alias(cfg.model_name, CHAMPION).version == version  # type: ignore[union-attr]
    rows = generate(cfg.data).head(20)
    served = reg.load(cfg.model_name, CHAMPION)
    np.testing.assert_allclose(served.predict(rows), LinearModel.load(model_path).predict(rows))
    # The reference went through the server into S3, and comes back by alias.
    keys = _s3_keys(s3_env)
    assert any(k.endswith("/artifacts/reference/train_sample.parquet") for k in keys), keys
    # (the reports test may have written monitoring/ keys into this module's bucket before)
    assert all(k.startswith("mlflow/") for k in keys if "/artifacts/" in k), keys
    (tmp_path / "data" / f"{cfg.model_name}.parquet").unlink()  # a monitor pod has no data
    reference = reference_frame(cfg)
    pd.testing.assert_frame_equal(reference, sample)
    assert len(reference) == 400
    _log_traffic(cfg, tmp_path / "payloads.db", shift=1.0)
    result = run_monitor(cfg, tmp_path / "payloads.db", reference, now=T0 + HOUR + 42)
    assert result.drift is not None and result.drift.dataset_drift
    assert "data_drift" in result.reasons and result.alert is not None
    rmse = reg.run_metrics(reg.by_alias(cfg.model_name, CHAMPION).run_id)["rmse"]  # type: ignore[union-attr]
    assert validation_error(cfg) == pytest.approx(rmse)  # the concept-drift baseline


def test_monitor_writes_its_reports_to_s3(s3_env: S3, tmp_path: Path) -> None:
    prefix = f"s3://{s3_env.bucket}/monitoring"
    cfg = _config(tmp_path, f"sqlite:///{tmp_path}/m.db", prefix)
    reference = split_frame(cfg, generate(cfg.data)).train
    _log_traffic(cfg, tmp_path / "payloads.db", shift=1.0)
    result = run_monitor(
        cfg, tmp_path / "payloads.db", reference, now=T0 + HOUR + 42, baseline_error=1.0
    )
    stem = f"monitoring/{cfg.model_name}/{result.window.slug()}"
    assert result.json_url == f"{prefix}/{cfg.model_name}/{result.window.slug()}.json"
    assert result.html_url == f"s3://{s3_env.bucket}/{stem}.html"
    client = s3_env.client()
    doc = json.loads(client.get_object(Bucket=s3_env.bucket, Key=f"{stem}.json")["Body"].read())
    assert doc["reports"] == {"json": result.json_url, "html": result.html_url}
    assert doc["alert"]["alert_id"] == result.alert.alert_id  # type: ignore[union-attr]
    html = client.get_object(Bucket=s3_env.bucket, Key=f"{stem}.html")["Body"].read()
    assert b"<html" in html[:2000].lower()
    assert not (tmp_path / "reports").exists()
