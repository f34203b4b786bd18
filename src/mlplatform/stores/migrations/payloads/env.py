"""Alembic environment (see :mod:`mlplatform.stores.migrations`)."""

from mlplatform.stores.migrations import run_env

run_env()
