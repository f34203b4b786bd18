"""The platform's ``train_gd`` component (``make compile`` writes ``components/train_gd.yaml``).

Defined in ``mlplatform.orchestration.components.train_gd`` (installed with the package).
"""

from mlplatform.orchestration.components.train_gd import train_gd

__all__ = ["train_gd"]
