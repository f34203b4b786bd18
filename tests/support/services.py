"""The real PostgreSQL and Redis servers that tests marked ``services`` use.

URLs come from ``MLPLATFORM_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/
postgres``, an administrative database used only to create and drop per-test databases) and
``MLPLATFORM_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``). A server that does not
answer skips the test with the reason, unless ``MLPLATFORM_TEST_SERVICES=required`` (CI), where
it fails the test: a missing server is never a silent skip there.

Each test gets its own database (``fresh_postgres``) or key prefix (``redis_prefix``) and it is
dropped afterwards, so tests pass in any order and leave nothing behind.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

POSTGRES_URL = os.environ.get(
    "MLPLATFORM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("MLPLATFORM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRED = os.environ.get("MLPLATFORM_TEST_SERVICES") == "required"


def _reachable(url: str, default_port: int) -> str | None:
    """None when a TCP connection to the URL's host and port succeeds, else the reason."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or default_port
    try:
        with socket.create_connection((host, port), timeout=2):
            return None
    except OSError as exc:
        return f"{host}:{port} does not answer ({exc.strerror or exc})"


def need(url: str, default_port: int, name: str) -> None:
    """Skip (or, with MLPLATFORM_TEST_SERVICES=required, fail) when the server is absent."""
    reason = _reachable(url, default_port)
    if reason is None:
        return
    message = f"{name} is not running: {reason}"
    if REQUIRED:
        pytest.fail(f"{message} (MLPLATFORM_TEST_SERVICES=required)", pytrace=False)
    pytest.skip(message)


def with_database(url: str, database: str, driver: str = "postgresql+psycopg") -> str:
    """``url`` pointing at another database, with the SQLAlchemy driver name."""
    parts = urlsplit(url)
    return urlunsplit((driver, parts.netloc, f"/{database}", parts.query, ""))


@contextmanager
def fresh_postgres() -> Iterator[str]:
    """A new, empty PostgreSQL database for one test; its SQLAlchemy URL; dropped afterwards."""
    import psycopg

    need(POSTGRES_URL, 5432, "PostgreSQL")
    name = f"mlp_test_{uuid.uuid4().hex[:12]}"
    admin = with_database(
        POSTGRES_URL, urlsplit(POSTGRES_URL).path.lstrip("/") or "postgres", "postgresql"
    )
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(POSTGRES_URL, name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def redis_prefix() -> Iterator[tuple[str, str]]:
    """(Redis URL, a unique key prefix) for one test; every key under the prefix is deleted."""
    import redis

    need(REDIS_URL, 6379, "Redis")
    prefix = f"mlp_test_{uuid.uuid4().hex[:12]}"
    client = redis.Redis.from_url(REDIS_URL)
    try:
        yield REDIS_URL, prefix
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


def store_backends() -> list[Any]:
    """``pytest.mark.parametrize`` values for the stores' two backends: ``sqlite`` always,
    ``postgresql`` as a ``services`` test."""
    return ["sqlite", pytest.param("postgresql", marks=pytest.mark.services)]


@contextmanager
def store_database(backend: str, tmp: Path, name: str = "store.db") -> Iterator[str]:
    """A store URL for one test: a SQLite file ``tmp/name``, or a fresh PostgreSQL database
    (``fresh_postgres``) that is dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp / name}"
        return
    with fresh_postgres() as url:
        yield url
