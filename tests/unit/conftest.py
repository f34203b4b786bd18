"""Fixtures shared by the payload-block tests (``test_payload_blocks``, ``_compaction``,
``_pairs``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.services import store_database

from mlplatform.serving.payloads import store as store_module


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    with store_database("postgresql", tmp_path) as u:
        yield u


@pytest.fixture
def writer_merges_held(monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer's own merges of small blocks (every 10 s) stay out of a test that counts
    blocks, however slow the run; a test that wants them shortens ``EVERY`` itself."""
    monkeypatch.setattr(store_module, "EVERY", 3600.0)
