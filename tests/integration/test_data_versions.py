"""A pipeline run trains on exactly the data version it is given: pushed with the real DVC to a
local remote (the embedded default) or to S3 (moto's server on loopback, standard clients with an
endpoint URL, as on the cluster), fetched back by the data step by its md5 alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from tests.support.mlflow_server import S3, moto_s3
from typer.testing import CliRunner

from mlplatform.cli import app
from mlplatform.config import PlatformConfig, load_config
from mlplatform.errors import DataError, DataVersionNotFoundError
from mlplatform.features import online_rows, open_store
from mlplatform.stages import data_step, generate_data, materialize_features, push_data
from mlplatform.versioning import data_version, fetch_version, run_dvc

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def isolated_dvc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep DVC's site cache and global/system config out of the machine's shared folders."""
    for var, sub in [
        ("DVC_SITE_CACHE_DIR", "site-cache"),
        ("DVC_GLOBAL_CONFIG_DIR", "dvc-global"),
        ("DVC_SYSTEM_CONFIG_DIR", "dvc-system"),
    ]:
        monkeypatch.setenv(var, str(tmp_path / sub))


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder like this repo (cwd): .dvc/config with the local remote ../.dvcstore,
    the embedded feature store YAML, and a small house-price config."""
    root = tmp_path / "project"
    root.mkdir()
    run_dvc(root, "init", "--no-scm", "--quiet")
    (root / ".dvc" / "config").write_text((ROOT / ".dvc" / "config").read_text())
    (root / "feature_repo").mkdir()
    (root / "feature_repo" / "feature_store.yaml").write_text(
        (ROOT / "feature_repo" / "feature_store.yaml").read_text()
    )
    cfg = load_config(ROOT / "configs/house-price.yaml", env={}).with_overrides(
        data={"rows": 200, "seed": 1},
        feature_store={"repo_dir": "feature_repo"},
    )
    (root / "house-price.yaml").write_text(cfg.model_dump_json(by_alias=True))
    monkeypatch.chdir(root)
    return root


def config(root: Path, **data: object) -> PlatformConfig:
    return load_config(root / "house-price.yaml", env={}).with_overrides(data=data)


def assert_same_rows(frame: pd.DataFrame, original: pd.DataFrame) -> None:
    """The training set holds the original's ids and targets, row for row."""
    cols = ["house_id", "price_vnd"]
    pd.testing.assert_frame_equal(frame[cols], original[cols], check_dtype=False)


def test_pushed_version_is_trained_on_after_the_local_file_changed(project: Path) -> None:
    original = pd.read_parquet(generate_data(config(project)))
    pushed = CliRunner().invoke(app, ["data", "push", "--config", "house-price.yaml"])
    assert pushed.exit_code == 0, pushed.output
    md5 = pushed.stdout.strip().splitlines()[-1]
    assert md5 == data_version(project / "data/house-price.parquet")
    assert (project / ".dvcstore/files/md5" / md5[:2] / md5[2:]).is_file()

    generate_data(config(project, seed=2))  # the local file moves on
    assert data_version(project / "data/house-price.parquet") != md5
    info = data_step(config(project, version=md5), project / "run/dataset.parquet")

    assert info["data_md5"] == md5
    frame = pd.read_parquet(project / "run/dataset.parquet")
    assert_same_rows(frame, original)
    assert Path(info["data_path"]).is_relative_to(project / "run")


def test_materialize_serves_the_pinned_version(project: Path) -> None:
    original = pd.read_parquet(generate_data(config(project)))
    md5, _ = push_data(config(project))
    generate_data(config(project, seed=2))
    cfg = config(project, version=md5)
    assert materialize_features(cfg) == (project / "data/versions" / md5 / "house-price.parquet")
    ids = [int(i) for i in original["house_id"].head(3)]
    rows = online_rows(open_store(cfg), cfg, ids)
    expected = original.set_index("house_id").loc[ids, list(cfg.feature_names)].reset_index()
    pd.testing.assert_frame_equal(rows, expected, check_dtype=False)


def test_a_version_not_in_the_remote_is_a_clear_error(project: Path) -> None:
    missing = "0" * 32
    with pytest.raises(DataVersionNotFoundError, match=f"{missing}.*{project / '.dvcstore'}"):
        data_step(config(project, version=missing), project / "run/dataset.parquet")
    result = CliRunner().invoke(app, ["data", "push", "--config", "house-price.yaml"])
    assert result.exit_code == 2 and "not a file" in result.output  # nothing generated yet


def test_corrupt_object_is_refused(tmp_path: Path) -> None:
    remote, md5 = tmp_path / "remote", "0123456789abcdef0123456789abcdef"
    obj = remote / "files/md5/01/23456789abcdef0123456789abcdef"
    obj.parent.mkdir(parents=True)
    obj.write_bytes(b"not what the md5 says")
    with pytest.raises(DataError, match="corrupt"):
        fetch_version(str(remote), md5, tmp_path / "out.parquet")
    assert not (tmp_path / "out.parquet").exists()


@pytest.fixture()
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3]:
    """moto's S3 on loopback; the endpoint and keys in the environment, as the chart sets them."""
    with moto_s3() as server:
        for name, value in server.env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("MLFLOW_S3_ENDPOINT_URL")
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint)
        yield server


def test_version_pushed_to_s3_is_fetched_by_the_data_step(project: Path, s3: S3) -> None:
    remote = f"s3://{s3.bucket}/dvc"
    original = pd.read_parquet(generate_data(config(project)))
    md5, target = push_data(config(project), remote)
    assert target == remote
    listed = s3.client().list_objects_v2(Bucket=s3.bucket, Prefix="dvc/")["Contents"]
    assert [o["Key"] for o in listed] == [f"dvc/files/md5/{md5[:2]}/{md5[2:]}"]

    (project / "data/house-price.parquet").unlink()  # the pod has no local data at all
    cfg = config(project, remote=remote, version=md5)
    info = data_step(cfg, project / "run/dataset.parquet")
    assert info["data_md5"] == md5 and info["rows"] == len(original)
    frame = pd.read_parquet(project / "run/dataset.parquet")
    assert_same_rows(frame, original)

    with pytest.raises(DataVersionNotFoundError, match=f"{'f' * 32}.*{remote}"):
        data_step(config(project, remote=remote, version="f" * 32), project / "run2/d.parquet")


def test_dvc_pull_reads_what_push_data_wrote(project: Path, s3: S3) -> None:
    """The layout is DVC's own: a DVC repo whose remote is the bucket pulls the pushed version."""
    path = generate_data(config(project))
    md5, _ = push_data(config(project), f"s3://{s3.bucket}/dvc")
    repo = project / "clone"
    repo.mkdir()
    run_dvc(repo, "init", "--no-scm", "--quiet")
    run_dvc(repo, "remote", "add", "--default", "s3", f"s3://{s3.bucket}/dvc")
    run_dvc(repo, "remote", "modify", "s3", "endpointurl", s3.endpoint)
    (repo / "d.parquet.dvc").write_text(f"outs:\n- md5: {md5}\n  hash: md5\n  path: d.parquet\n")
    run_dvc(repo, "pull", "--quiet")
    assert (repo / "d.parquet").read_bytes() == path.read_bytes()
