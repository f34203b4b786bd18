"""The platform's ``explain`` component (``make compile`` writes ``components/explain.yaml``).

Defined in ``mlplatform.orchestration.components.explain`` (installed with the package).
"""

from mlplatform.orchestration.components.explain import explain

__all__ = ["explain"]
