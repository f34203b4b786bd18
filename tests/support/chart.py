"""The chart as ``helm template`` renders it, with the pinned helm in ``.tools/bin``; and the
pods' environment the way Kubernetes builds it (Secrets, ``$(VAR)`` references).

Used by the deploy tests (``tests/deploy/k8s_render.py``) and by the integration tests that
run a rendered workload's command on this machine.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "mlplatform"
HELM = ROOT / ".tools" / "bin" / "helm"
RELEASE = "mlplatform"
NAMESPACE = "mlplatform"

Obj = dict[str, Any]
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_REF = re.compile(r"\$\((\w+)\)")


def load_all(text: str) -> list[Obj]:
    return [d for d in yaml.load_all(text, Loader=_LOADER) if d]


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HELM), *args], capture_output=True, text=True, check=check, timeout=120
    )


#: What ``make deploy`` adds from the registry (scripts/serving_versions.py): the version
#: each predictor serves. Given first, so a test's own ``--set`` wins.
SERVED_VERSIONS = ("models.house-price.modelVersion=1", "models.credit-risk.modelVersion=1")


def template_args(values_file: str | None, *sets: str, versions: bool = True) -> list[str]:
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    if values_file and values_file != "values.yaml":
        args += ["--values", str(CHART / values_file)]
    for s in (*SERVED_VERSIONS, *sets) if versions else sets:
        args += ["--set", s]
    return args


def expand(value: str, env: Mapping[str, str]) -> str:
    """``$(VAR)`` references expanded as the kubelet expands them in env values, command and
    args (an unknown reference stays as written)."""
    return _REF.sub(lambda m: env.get(m[1], m[0]), value)


def container_env(container: Obj, secrets: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """The container's environment as the kubelet builds it: ``value``s, ``secretKeyRef``s
    read from ``secrets`` (name → key → value; a missing non-optional one is an error, as it
    keeps the pod from starting), and ``$(VAR)`` expanded from the variables defined above
    it (an unknown reference stays as written, as Kubernetes leaves it)."""
    env: dict[str, str] = {}
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]] = expand(str(e["value"]), env)
            continue
        ref = e["valueFrom"]["secretKeyRef"]
        value = secrets.get(ref["name"], {}).get(ref["key"])
        if value is None:
            if ref.get("optional"):
                continue
            raise KeyError(f"{e['name']}: Secret {ref['name']} has no key {ref['key']}")
        env[e["name"]] = value
    return env
