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


#: Under ``pytest -n`` (``make test`` runs two workers) every test of a module runs on the same
#: worker, so its module-scoped fixtures are built once, and the rehearsal's modules all run on
#: one worker, one after another: their pods bind 127.x addresses handed out per process and
#: need mount points at absolute paths (``/app``, ...) that a world takes away when it stops.
REHEARSAL_PREFIX = "test_rehearsal_"


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook; absent without the plugin
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    from xdist.scheduler import LoadFileScheduling

    class ModuleScheduling(LoadFileScheduling):
        """xdist's ``--dist loadfile``, with the rehearsal's modules as one scope."""

        def _split_scope(self, nodeid: str) -> str:
            return "rehearsal" if _is_rehearsal(nodeid) else nodeid.split("::", 1)[0]

    return ModuleScheduling(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The rehearsal's modules first (a stable sort on pytest-randomly's order): they are the
    longest scope, so under ``-n`` the other modules fill the second worker meanwhile."""
    items.sort(key=lambda item: not _is_rehearsal(item.nodeid))


def _is_rehearsal(nodeid: str) -> bool:
    return Path(nodeid.split("::", 1)[0]).name.startswith(REHEARSAL_PREFIX)
