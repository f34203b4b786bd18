"""The real DVC (the venv's ``dvc`` command) in temporary git repositories, with a local remote."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from mlplatform.config import load_config
from mlplatform.errors import DataError, DvcCommandError, NotTrackedError
from mlplatform.stages import generate_data
from mlplatform.versioning import (
    checkout,
    committed_configs,
    data_version,
    init,
    pull,
    push,
    recorded_version,
    render_params,
    run_dvc,
    track,
)

ROOT = Path(__file__).resolve().parents[2]
DATA = Path("data/house-price.parquet")


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
def repo(tmp_path: Path) -> Path:
    """A git work tree made a DVC repo whose default remote is a local folder."""
    root = tmp_path / "repo"
    root.mkdir()
    subprocess.run(["git", "init", "--quiet", str(root)], check=True)
    init(root, remote=tmp_path / "remote")
    return root


def generate(repo: Path, seed: int = 42) -> Path:
    cfg = load_config(ROOT / "configs/house-price.yaml", env={})
    cfg = cfg.with_overrides(data={"data_dir": str(repo / "data"), "rows": 200, "seed": seed})
    return generate_data(cfg)


def test_track_push_delete_pull_gives_back_identical_bytes(repo: Path, tmp_path: Path) -> None:
    original = generate(repo).read_bytes()
    md5 = track(repo, DATA)
    push(repo)
    assert (tmp_path / "remote" / "files" / "md5" / md5[:2] / md5[2:]).is_file()
    (repo / DATA).unlink()
    shutil.rmtree(repo / ".dvc" / "cache")  # so the bytes can only come from the remote
    pull(repo)
    assert (repo / DATA).read_bytes() == original
    (repo / DATA).unlink()
    checkout(repo, [DATA])  # now from the local cache that pull filled
    assert (repo / DATA).read_bytes() == original


def test_data_version_is_the_md5_dvc_add_records(repo: Path) -> None:
    path = generate(repo)
    md5 = track(repo, DATA)
    written = yaml.safe_load((repo / "data/house-price.parquet.dvc").read_text())
    assert written["outs"][0]["md5"] == md5 == data_version(path)
    assert recorded_version(repo / "data/house-price.parquet.dvc") == md5


def test_changing_the_data_changes_its_version(repo: Path) -> None:
    first = data_version(generate(repo, seed=1))
    track(repo, DATA)
    second = data_version(generate(repo, seed=2))
    assert second != first
    assert track(repo, DATA) == second
    assert data_version(generate(repo, seed=1)) == first  # same data, same version


def test_failures_are_platform_errors(repo: Path, tmp_path: Path) -> None:
    with pytest.raises(DvcCommandError, match="dvc add"):
        track(repo, Path("data/missing.parquet"))
    with pytest.raises(NotTrackedError):
        recorded_version(repo / "data/missing.parquet.dvc")
    with pytest.raises(DataError):
        data_version(tmp_path / "missing.parquet")


def test_committed_params_yaml_is_what_the_generator_writes() -> None:
    expected = render_params(committed_configs(ROOT))
    assert (ROOT / "params.yaml").read_text(encoding="utf-8") == expected, (
        "params.yaml is stale: run `python -m mlplatform.versioning`"
    )


def test_dvc_yaml_has_a_data_and_train_stage_per_config(tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    subprocess.run(["git", "init", "--quiet", str(root)], check=True)
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, root / name)
    run_dvc(root, "init", "--quiet")
    listed = run_dvc(root, "stage", "list").splitlines()
    stages = {line.split()[0]: line for line in listed}
    for cfg in committed_configs(ROOT):
        assert f"data@{cfg.model_name}" in stages
        assert str(cfg.data_path) in stages[f"data@{cfg.model_name}"]
        assert f"train@{cfg.model_name}" in stages
