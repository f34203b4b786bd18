"""Where data versions live in a DVC remote, and how the config names them (no I/O to remotes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlplatform.config import load_config
from mlplatform.errors import ConfigError, DataError
from mlplatform.versioning import default_remote, object_url, s3_endpoint

ROOT = Path(__file__).resolve().parents[2]
MD5 = "3f2c0a9d8e7b6a5f4e3d2c1b0a998877"


def test_object_url_is_dvc3s_content_addressed_layout() -> None:
    assert object_url("s3://b/dvc/", MD5) == f"s3://b/dvc/files/md5/3f/{MD5[2:]}"
    assert object_url("/srv/remote", MD5) == f"/srv/remote/files/md5/3f/{MD5[2:]}"


def test_default_remote_is_the_committed_local_remote() -> None:
    assert default_remote(ROOT) == str(ROOT / ".dvcstore")


def test_no_default_remote_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no default remote: set data.remote"):
        default_remote(tmp_path)


def test_s3_endpoint_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    assert s3_endpoint() is None
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", "http://minio:9000")
    assert s3_endpoint() == "http://minio:9000"
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://other:9000")
    assert s3_endpoint() == "http://other:9000"


def test_data_version_must_be_an_md5() -> None:
    cfg = load_config(ROOT / "configs/house-price.yaml", env={})
    assert cfg.data.version is None and cfg.data.remote is None
    pinned = cfg.with_overrides(data={"version": MD5, "remote": "s3://b/dvc"})
    assert (pinned.data.version, pinned.data.remote) == (MD5, "s3://b/dvc")
    with pytest.raises(ConfigError, match="data.version"):
        cfg.with_overrides(data={"version": "v1"})
    env = {"MLPLATFORM__DATA__VERSION": MD5}
    assert load_config(ROOT / "configs/house-price.yaml", env=env).data.version == MD5
