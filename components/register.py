"""The platform's ``register`` component (``make compile`` writes ``components/register.yaml``).

Defined in ``mlplatform.orchestration.components.register`` (installed with the package).
"""

from mlplatform.orchestration.components.register import register

__all__ = ["register"]
