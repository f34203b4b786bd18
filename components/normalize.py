"""The platform's ``normalize`` component (``make compile`` writes ``components/normalize.yaml``).

Defined in ``mlplatform.orchestration.components.normalize`` (installed with the package).
"""

from mlplatform.orchestration.components.normalize import normalize

__all__ = ["normalize"]
