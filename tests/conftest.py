"""Shared fixtures. Telemetry is off for every library the tests drive."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def root() -> Path:
    return ROOT


#: Test modules that share one worker under ``pytest -n`` (``make test`` runs two): the
#: rehearsal's pods need mount points at absolute paths (``/app``, ``/etc/mlplatform``, ...)
#: that :func:`tests.support.rehearsal.pods.remove_mount_points` takes away when a world
#: stops, so two rehearsals at once would pull them from under each other.
ONE_WORKER = {"rehearsal": "test_rehearsal_"}


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist's ``--dist loadgroup``, every test of a module goes to the same worker (its
    module-scoped fixtures are built once), and the modules of :data:`ONE_WORKER` to one."""
    for item in items:
        if item.get_closest_marker("xdist_group"):
            continue
        module = item.nodeid.split("::")[0]
        name = Path(module).stem
        group = next((g for g, prefix in ONE_WORKER.items() if name.startswith(prefix)), module)
        item.add_marker(pytest.mark.xdist_group(group))
