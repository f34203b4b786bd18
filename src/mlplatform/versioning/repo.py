"""DVC, thin: the ``dvc`` command of this Python environment, run in a given repository.

The CLI is DVC's stable interface (``dvc.repo.Repo`` is internal and changes between
releases), and a subprocess keeps DVC's logging and state out of the caller's process.

>>> init(Path("."), remote=Path("/srv/dvc-remote"))     # once, in a git work tree
>>> track(Path("."), Path("data/house-price.parquet"))  # → the md5 written to the .dvc file
'3f2c…'
>>> push(Path("."))
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import yaml

from mlplatform.errors import DataError, DvcCommandError, NotTrackedError

DEFAULT_REMOTE = "local"
_CHUNK = 1 << 20


def data_version(path: Path) -> str:
    """The md5 DVC 3 records for a file: the plain md5 of its bytes (``hash: md5``).

    The same value appears in ``<file>.dvc`` after ``dvc add`` and in ``dvc.lock`` for a stage
    output, so a model that stores it names the exact data it was trained on.
    """
    if not path.is_file():
        raise DataError(f"cannot version {path}: not a file")
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def recorded_version(dvc_file: Path) -> str:
    """The md5 a ``.dvc`` file records for its (single) output."""
    try:
        outs = yaml.safe_load(dvc_file.read_text(encoding="utf-8"))["outs"]
        return str(outs[0]["md5"])
    except FileNotFoundError:
        raise NotTrackedError(f"{dvc_file} does not exist: run `dvc add` first") from None
    except (KeyError, IndexError, TypeError):
        raise NotTrackedError(f"{dvc_file} records no md5") from None


def run_dvc(repo_dir: Path, *args: str) -> str:
    """Run ``dvc ARGS`` in ``repo_dir``; its stdout, or :class:`DvcCommandError`."""
    env = {"DVC_NO_ANALYTICS": "1", **os.environ}
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=repo_dir,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()
        raise DvcCommandError(f"`dvc {' '.join(args)}` failed in {repo_dir}: {detail}")
    return proc.stdout


def init(repo_dir: Path, remote: Path | str, name: str = DEFAULT_REMOTE) -> None:
    """Make ``repo_dir`` (a git work tree) a DVC repo whose default remote is ``remote``.

    Idempotent: an existing ``.dvc/`` is kept and the remote is (re)set.
    """
    if not (repo_dir / ".dvc").is_dir():
        run_dvc(repo_dir, "init", "--quiet")
    run_dvc(repo_dir, "remote", "add", "--default", "--force", name, str(remote))


def track(repo_dir: Path, path: Path) -> str:
    """``dvc add`` a file (cached, git-ignored, ``<path>.dvc`` written); the md5 recorded."""
    run_dvc(repo_dir, "add", "--quiet", str(path))
    dvc_file = repo_dir / path.parent / f"{path.name}.dvc"
    return recorded_version(dvc_file)


def push(repo_dir: Path, remote: str | None = None) -> None:
    """Upload every cached version the workspace references to ``remote`` (default remote)."""
    run_dvc(repo_dir, "push", "--quiet", *(["--remote", remote] if remote else []))


def pull(repo_dir: Path, targets: list[Path] | None = None, remote: str | None = None) -> None:
    """Fetch from ``remote`` and check out ``targets`` (default: everything tracked)."""
    extra = ["--remote", remote] if remote else []
    run_dvc(repo_dir, "pull", "--quiet", *extra, *(str(t) for t in targets or []))


def checkout(repo_dir: Path, targets: list[Path] | None = None) -> None:
    """Restore ``targets`` from the local cache to the versions the ``.dvc``/lock files name."""
    run_dvc(repo_dir, "checkout", "--quiet", *(str(t) for t in targets or []))
