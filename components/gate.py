"""The platform's ``gate`` component (``make compile`` writes ``components/gate.yaml``).

Defined in ``mlplatform.orchestration.components.gate`` (installed with the package).
"""

from mlplatform.orchestration.components.gate import gate

__all__ = ["gate"]
