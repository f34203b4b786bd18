"""Failures of the feature store adapter, one class each (all :class:`PlatformError`)."""

from __future__ import annotations

from mlplatform.errors import DataError, PlatformError


class FeatureRepoError(PlatformError):
    """The feature repository cannot be opened: missing or invalid YAML, unset variables."""


class UnknownEntityError(DataError):
    """Online lookup of entity ids the online store has never seen (not materialized)."""

    def __init__(self, entity: str, missing: list[int]) -> None:
        self.entity = entity
        self.missing = missing
        super().__init__(
            f"unknown {entity} {missing}: not in the online store "
            "(never written, or not materialized yet)"
        )
