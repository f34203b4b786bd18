"""The committed dvc.lock is what `make data` writes, so `make data` leaves the tree clean.

The real DVC judges it: a copy of the project's DVC files and the data stages' dependencies,
with the data files generated afresh, must be up to date for every data stage (`dvc status`
empty), which is exactly when `dvc repro` of those stages changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from mlplatform.stages import generate_data
from mlplatform.versioning import committed_configs, run_dvc

ROOT = Path(__file__).resolve().parents[2]
MODELS = [cfg.model_name for cfg in committed_configs(ROOT)]
DATA_STAGES = [f"data@{model}" for model in MODELS]
STALE = "dvc.lock is stale: run `make data` and commit dvc.lock"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The DVC files and each data stage's deps, in a fresh DVC repo, with fresh data."""
    tmp = tmp_path_factory.mktemp("dvc-lock")
    root = tmp / "project"
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    deps = stages["data"]["do"]["deps"]
    for rel in ["dvc.yaml", "dvc.lock", "params.yaml", *deps]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, root / rel)
    (root / ".dvc").mkdir()  # what `dvc init --no-scm` writes, without its start-up cost
    (root / ".dvc" / "config").write_text("[core]\n    no_scm = true\n", encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        for var in ("DVC_SITE_CACHE_DIR", "DVC_GLOBAL_CONFIG_DIR", "DVC_SYSTEM_CONFIG_DIR"):
            mp.setenv(var, str(tmp / var.lower()))
        for cfg in committed_configs(ROOT):
            cache(
                root,
                generate_data(cfg.with_overrides(data={"data_dir": str(root / cfg.data.data_dir)})),
            )
        yield root


def cache(root: Path, path: Path) -> None:
    """Put a file into the repo's DVC cache (DVC 3's layout, files/md5/<2>/<30>), as `dvc repro`
    would: then an output is "not in cache" only when the lock names other bytes."""
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    entry = root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    entry.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, entry)


def test_every_data_stage_is_in_the_committed_lock() -> None:
    locked = yaml.safe_load((ROOT / "dvc.lock").read_text(encoding="utf-8"))["stages"]
    assert sorted(s for s in locked if s.startswith("data@")) == sorted(DATA_STAGES), STALE


def test_dvc_finds_every_data_stage_up_to_date(project: Path) -> None:
    """Deps (code), params (the model's `data:` section) and outs (the data's md5) all match."""
    status = json.loads(run_dvc(project, "status", "--json", *DATA_STAGES))
    assert status == {}, f"{STALE}: {status}"
