"""Data versions in a DVC remote: push a file with DVC, fetch one back by its md5 alone.

A DVC 3 remote is content-addressed: the file whose md5 is ``d41d8cd9…`` lives at
``<remote>/files/md5/d4/1d8cd9…`` (``dvc_data.hashfile.db``, ``hash: md5``). A pipeline pod has
no DVC repository, so :func:`fetch_version` reads that object with fsspec (local folder or
``s3://``; s3fs takes the endpoint from ``AWS_ENDPOINT_URL``, as dvc-s3 and MLflow do), checks
its md5 and hands back a local copy. :func:`push_version` runs the real ``dvc add`` +
``dvc push`` in a throw-away DVC repo, so what lands in the remote is exactly DVC's layout.

>>> md5 = push_version(Path("data/house-price.parquet"), "s3://mlplatform-data/dvc")
>>> fetch_version("s3://mlplatform-data/dvc", md5, Path("/tmp/versions/house-price.parquet"))
"""

from __future__ import annotations

import configparser
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from mlplatform.errors import DataError, DataVersionNotFoundError
from mlplatform.versioning.repo import data_version, recorded_version, run_dvc

#: Environment variables naming an S3-compatible endpoint (MinIO, moto), first one set wins.
ENDPOINT_VARS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL")
_PUSHED_NAME = "data.parquet"


def s3_endpoint() -> str | None:
    """The S3 endpoint URL the environment names, or None for AWS itself."""
    return next((os.environ[v] for v in ENDPOINT_VARS if os.environ.get(v)), None)


def object_url(remote: str, md5: str) -> str:
    """Where DVC 3 keeps the file with this md5 in ``remote``: ``files/md5/<2>/<30>``."""
    return f"{remote.rstrip('/')}/files/md5/{md5[:2]}/{md5[2:]}"


def default_remote(root: Path = Path()) -> str:
    """The URL of the default remote of the DVC repo at ``root`` (``.dvc/config``, then
    ``config.local``); a relative path is resolved against ``.dvc/``, as DVC does."""
    parser = configparser.ConfigParser()
    parser.read([root / ".dvc" / "config", root / ".dvc" / "config.local"])
    name = parser.get("core", "remote", fallback=None)
    section = f"'remote \"{name}\"'"
    if name is None or not parser.has_option(section, "url"):
        raise DataError(f"{root.resolve()}/.dvc/config names no default remote: set data.remote")
    url = parser.get(section, "url")
    if "://" in url or Path(url).is_absolute():
        return url
    return str((root / ".dvc" / url).resolve())


def fetch_version(remote: str, md5: str, dest: Path) -> Path:
    """Copy the object ``md5`` from ``remote`` to ``dest`` and check its md5; ``dest``.

    A ``dest`` that already holds these bytes is kept. Raises
    :class:`DataVersionNotFoundError` when the remote lacks the object.
    """
    if dest.is_file() and data_version(dest) == md5:
        return dest
    from fsspec.core import url_to_fs  # type: ignore[import-untyped]

    url = object_url(remote, md5)
    fs, path = url_to_fs(url, **_storage_options(url))
    if not fs.isfile(path):
        raise DataVersionNotFoundError(md5, remote)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.partial")
    fs.get_file(path, str(partial))
    got = data_version(partial)
    if got != md5:
        partial.unlink()
        raise DataError(f"{url} holds bytes with md5 {got}, not {md5}: the remote is corrupt")
    return partial.replace(dest)


def _storage_options(url: str) -> dict[str, Any]:
    endpoint = s3_endpoint()
    if url.startswith("s3://") and endpoint:
        return {"client_kwargs": {"endpoint_url": endpoint}}
    return {}


def push_version(path: Path, remote: str) -> str:
    """Upload ``path`` to the DVC ``remote`` with ``dvc add`` + ``dvc push``; its md5.

    Runs in a temporary DVC repository (no git needed, the caller's repo is untouched), so the
    object lands where :func:`fetch_version` (and ``dvc pull``) look for it.
    """
    if not path.is_file():
        raise DataError(f"cannot push {path}: not a file (generate it with `mlplatform data`)")
    with tempfile.TemporaryDirectory(prefix="mlplatform-push-") as tmp:
        repo = Path(tmp)
        run_dvc(repo, "init", "--no-scm", "--quiet")
        run_dvc(repo, "remote", "add", "--default", "target", _absolute(remote))
        endpoint = s3_endpoint()
        if remote.startswith("s3://") and endpoint:
            run_dvc(repo, "remote", "modify", "target", "endpointurl", endpoint)
        shutil.copyfile(path, repo / _PUSHED_NAME)
        run_dvc(repo, "add", "--quiet", _PUSHED_NAME)
        run_dvc(repo, "push", "--quiet")
        return recorded_version(repo / f"{_PUSHED_NAME}.dvc")


def _absolute(remote: str) -> str:
    """A local remote as an absolute path (the temporary repo is elsewhere); URLs unchanged."""
    return remote if "://" in remote else str(Path(remote).resolve())
