"""Where the monitor's reports go: ``monitor.reports_dir``, a local folder or an
``s3://bucket/prefix`` URL, written through fsspec (s3fs for ``s3://``).

The S3 endpoint is taken as MLflow takes it: ``MLFLOW_S3_ENDPOINT_URL`` (what the chart sets
for MinIO), else ``AWS_ENDPOINT_URL``, else AWS itself; keys come from the usual
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``.

>>> report_url("s3://reports/monitoring/", "house-price", "20260101T000000Z", ".json")
's3://reports/monitoring/house-price/20260101T000000Z.json'
>>> report_url("artifacts/monitoring", "house-price", "w", ".html")
'artifacts/monitoring/house-price/w.html'
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mlplatform.errors import ReportError


def report_url(reports_dir: str | Path, model: str, stem: str, suffix: str) -> str:
    """``<reports_dir>/<model>/<stem><suffix>``: a URL for ``s3://``, else a local path."""
    return f"{str(reports_dir).rstrip('/')}/{model}/{stem}{suffix}"


def storage_options(url: str) -> dict[str, Any]:
    """fsspec options for ``url``: the S3 endpoint from the environment, as MLflow reads it."""
    if not url.startswith("s3://"):
        return {}
    endpoint = os.environ.get("MLFLOW_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL")
    return {"client_kwargs": {"endpoint_url": endpoint}} if endpoint else {}


def _filesystem(url: str) -> tuple[Any, str]:
    """The fsspec filesystem of ``url`` (local or s3fs) and the path within it."""
    from fsspec.core import url_to_fs  # type: ignore[import-untyped]

    fs, path = url_to_fs(url, **storage_options(url))
    return fs, str(path)


def write_report(url: str, text: str) -> str:
    """Write ``text`` (UTF-8) to ``url``, creating local folders; returns ``url``."""
    try:
        fs, path = _filesystem(url)
        fs.makedirs(fs._parent(path), exist_ok=True)
        with fs.open(path, "w", encoding="utf-8") as out:
            out.write(text)
    except (OSError, ValueError) as exc:
        raise ReportError(f"could not write the report {url}: {exc}") from exc
    return url


def read_report(url: str) -> str:
    """The text of a report written by :func:`write_report`."""
    try:
        fs, path = _filesystem(url)
        with fs.open(path, "r", encoding="utf-8") as src:
            return str(src.read())
    except (OSError, ValueError) as exc:
        raise ReportError(f"could not read the report {url}: {exc}") from exc
