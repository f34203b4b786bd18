"""The registry's outages: bounded waits for MLflow's client, and its failures to reach the
tracking server told apart from answers (a 4xx: no such model, version or alias).

>>> with reachable(cfg):                # connection refused, timed out, HTTP 5xx:
...     client.get_model_version_by_alias(name, "champion")   # RegistryUnavailableError (503)
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from mlplatform.config import RegistryConfig
from mlplatform.errors import RegistryUnavailableError

if TYPE_CHECKING:
    from mlflow.exceptions import MlflowException

_ERRNO = re.compile(r"\[Errno -?\d+\] [^'\")]+")


def bound_requests(cfg: RegistryConfig) -> None:
    """Make a tracking server that is down fail in about (retries + 1) x timeout, not in
    MLflow's minutes (its client reads these variables at each request)."""
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(cfg.request_timeout_s)
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(cfg.request_retries)


@contextlib.contextmanager
def reachable(cfg: RegistryConfig) -> Iterator[None]:
    """Turn MLflow's failures to reach the registry (HTTP 5xx, connection refused, timeout,
    database down) into :class:`RegistryUnavailableError` (503); a 4xx passes through."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        if exc.get_http_status_code() < 500:  # type: ignore[no-untyped-call]
            raise
        raise unavailable(cfg, exc) from None


def unavailable(cfg: RegistryConfig, exc: MlflowException) -> RegistryUnavailableError:
    """The one-line error of an outage, with MLflow's reason (``[Errno 111] Connection
    refused``, a timeout) rather than its whole retry chain."""
    text = " ".join(str(exc).split())
    found = _ERRNO.search(text)
    if found:
        reason = found.group(0).strip()
    elif "timeout" in text.lower() or "timed out" in text.lower():
        reason = f"no answer within {cfg.request_timeout_s}s"
    else:
        reason = text if len(text) <= 200 else text[:197] + "..."
    return RegistryUnavailableError(
        f"model registry {cfg.tracking_uri} is unavailable "
        f"({cfg.request_retries} retries, {cfg.request_timeout_s}s timeout): {reason}"
    )
