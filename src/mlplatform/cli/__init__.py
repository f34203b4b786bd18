"""The ``mlplatform`` command line. Every command has ``--help``; errors exit with code 2.

Commands live by theme in ``train`` (model work), ``pipeline`` (KFP and the registry), ``ops``
(serving, rollout), ``monitoring`` (monitor, retrain), ``traffic`` (client traffic for a local
serve) and ``payloads`` (retention); importing them registers them on ``app``, in the order
`mlplatform --help` lists them.
"""

from __future__ import annotations

# isort: off
from mlplatform.cli import train  # noqa: F401
from mlplatform.cli import pipeline  # noqa: F401
from mlplatform.cli import ops  # noqa: F401
from mlplatform.cli import monitoring  # noqa: F401
from mlplatform.cli import traffic  # noqa: F401
from mlplatform.cli import payloads  # noqa: F401
from mlplatform.cli.base import app

# isort: on


def main() -> None:
    app()


__all__ = ["app", "main"]
