"""Where monitor reports go: a local folder or s3:// (endpoint from the environment as MLflow
reads it); the write itself against S3 is tested on moto in tests/integration."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlplatform.config import MonitorConfig
from mlplatform.errors import ReportError
from mlplatform.monitoring.reports import read_report, report_url, storage_options, write_report


def test_report_url_joins_folder_or_bucket_prefix() -> None:
    assert report_url("s3://b/monitoring/", "m", "w", ".json") == "s3://b/monitoring/m/w.json"
    assert report_url(Path("out"), "m", "w", ".html") == "out/m/w.html"
    assert MonitorConfig().reports_dir == "artifacts/monitoring"
    assert MonitorConfig(reports_dir="s3://b/p").reports_dir == "s3://b/p"


def test_local_reports_create_their_folder(tmp_path: Path) -> None:
    url = report_url(tmp_path / "reports", "house-price", "w", ".json")
    assert write_report(url, '{"ok": true}') == url
    assert Path(url).read_text(encoding="utf-8") == '{"ok": true}' == read_report(url)
    with pytest.raises(ReportError, match="could not read the report"):
        read_report(str(tmp_path / "missing.json"))


def test_s3_endpoint_is_read_as_mlflow_reads_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_S3_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    assert storage_options("s3://b/k") == {} and storage_options("/tmp/x") == {}
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://aws:9000")
    assert storage_options("s3://b/k") == {"client_kwargs": {"endpoint_url": "http://aws:9000"}}
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", "http://minio:9000")
    assert storage_options("s3://b/k") == {"client_kwargs": {"endpoint_url": "http://minio:9000"}}
    assert storage_options("/tmp/x") == {}
