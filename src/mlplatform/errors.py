"""One error class per failure. Adapters translate them (HTTP 400, CLI exit code 2, failed task).

Every message names what was wrong and, where there is one, what to do about it.
"""

from __future__ import annotations


class PlatformError(Exception):
    """Base class of every error the platform raises on purpose."""


class ConfigError(PlatformError):
    """The configuration file or an environment override is invalid."""


class DataError(PlatformError):
    """Input data is unusable: empty, wrong shape, NaN/inf, non-numeric, unknown category."""


class DivergenceError(PlatformError):
    """Gradient descent diverged (non-finite or rising loss)."""


class ModelNotLoadedError(PlatformError):
    """A model was used before it was fitted or loaded."""


class ExplanationError(PlatformError):
    """An explanation could not be computed for the given input."""
