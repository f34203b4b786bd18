"""The core is plain Python: importing it must not load any platform framework."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import mlplatform.core

FRAMEWORKS = ("kfp", "kserve", "feast", "mlflow", "evidently", "dvc")


def test_core_imports_no_framework() -> None:
    modules = [
        f"mlplatform.core.{m.name}" for m in pkgutil.walk_packages(mlplatform.core.__path__, "")
    ]
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print([f for f in {FRAMEWORKS!r} if f in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert len(modules) >= 8
