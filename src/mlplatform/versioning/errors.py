"""Failures of the data-versioning adapter, one class each (all :class:`PlatformError`)."""

from __future__ import annotations

from mlplatform.errors import PlatformError


class DvcCommandError(PlatformError):
    """A ``dvc`` command exited non-zero; the message carries the command and DVC's own error."""


class NotTrackedError(PlatformError):
    """A path has no ``.dvc`` file (or it records no md5): it is not under DVC."""
