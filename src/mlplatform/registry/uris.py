"""MLflow's process-wide URIs, set only for the block that needs them.

MLflow's fluent API (``start_run``, ``log_model``, ``models:/`` downloads, and the client's
resolution of a model version whose source names a logged model) reads the tracking and registry
URIs of the whole process, and ``set_tracking_uri``/``set_registry_uri`` also export them as
environment variables for child processes. :func:`scoped_uris` sets both for one block and then
puts back what was there (values and variables), so a registry never leaves its URIs behind for
another client in the process or for a child it starts.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Any

#: What ``mlflow.set_tracking_uri``/``set_registry_uri`` export for child processes.
URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
_LOCK = threading.Lock()


@contextlib.contextmanager
def scoped_uris(mlflow: Any, uri: str) -> Iterator[None]:
    """``uri`` as MLflow's tracking and registry URI inside the block only (one block at a
    time in the process); afterwards the previous ones, or none, again."""
    with _LOCK:
        before = {k: os.environ.get(k) for k in URI_VARIABLES}
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        try:
            yield
        finally:
            # None unsets (MLflow's own _use_tracking_uri restores a None the same way)
            mlflow.set_tracking_uri(before["MLFLOW_TRACKING_URI"])
            mlflow.set_registry_uri(before["MLFLOW_REGISTRY_URI"])
            for key, value in before.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
