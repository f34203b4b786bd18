"""The kind walk-through's ports on the user's machine (the ingress mapping, the KFP UI and
MLflow forwards) stay clear of `mlplatform serve`'s, so both can run at once."""

from __future__ import annotations

import re

import yaml
from k8s_render import ROOT

from mlplatform.config.sections import ServeConfig


def serve_ports() -> set[int]:
    serve = ServeConfig()
    return {value for name, value in serve.model_dump().items() if name.endswith("_port")}


def cluster_ports() -> dict[str, int]:
    kind = yaml.safe_load((ROOT / "manifests/kind/cluster.yaml").read_text(encoding="utf-8"))
    mk = (ROOT / "mk/cluster.mk").read_text(encoding="utf-8")
    found = dict(re.findall(r"^(KFP_UI_PORT|MLFLOW_PORT) \?= (\d+)$", mk, re.M))
    ports = {name: int(value) for name, value in found.items()}
    ports["ingress"] = kind["nodes"][0]["extraPortMappings"][0]["hostPort"]
    return ports


def test_cluster_ports_do_not_clash_with_the_local_stack() -> None:
    ports = cluster_ports()
    assert set(ports) == {"KFP_UI_PORT", "MLFLOW_PORT", "ingress"}
    assert {8080, 8081, 8090} <= serve_ports()  # the defaults the README names
    assert not set(ports.values()) & serve_ports(), ports
    assert len(set(ports.values())) == len(ports)


def test_the_walk_through_uses_those_ports() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    kind = readme[readme.index("## Deploy on kind") : readme.index("## Benchmarks")]
    ports = cluster_ports()
    assert f"http://127.0.0.1:{ports['ingress']}/v1/models/" in kind
    assert f"http://localhost:{ports['KFP_UI_PORT']}" in kind
    assert f"MLPLATFORM__REGISTRY__TRACKING_URI=http://127.0.0.1:{ports['MLFLOW_PORT']}" in kind
    for port in serve_ports():
        assert f"127.0.0.1:{port}/" not in kind and f"localhost:{port}" not in kind, port
