"""The platform's ``data`` component (``make compile`` writes ``components/data.yaml``).

Defined in ``mlplatform.orchestration.components.data`` (installed with the package).
"""

from mlplatform.orchestration.components.data import data

__all__ = ["data"]
