"""Upload the compiled training pipeline to a KFP cluster, or start a run of it.

    python scripts/kfp_pipeline.py upload                               # make pipeline-upload
    python scripts/kfp_pipeline.py run --config configs/house-price.yaml  # make pipeline-run

Without ``--host`` the KFP API is reached through ``kubectl port-forward svc/ml-pipeline``
(namespace ``kubeflow``), started for the command and stopped after it. A run gets the model's
config as JSON with the cluster's overrides baked in (the pipeline pods run in the KFP namespace
and see no ``MLPLATFORM__*`` variables). The overrides are the release's, read from its
ConfigMap ``<release>-pipeline`` (declared once, in the chart: the in-cluster MLflow URI,
proxied artifacts, the DVC remote, a run-private Feast repo), and so is the data version the
run trains on (``data-version.<model>``, from ``models.<model>.dataVersion``) unless
``--data-version`` names one (``make pipeline-run DATA_VERSION=<md5>``).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from port_forward import forward

from mlplatform.orchestration.training_pipeline import PIPELINE_NAME

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ROOT / "pipelines" / "training_pipeline.yaml"
EXPERIMENT = "mlplatform"
LOCAL_PORT = 8888
#: `make kfp-ui` forwards the KFP UI here (KFP_UI_PORT in mk/cluster.mk; not `mlplatform serve`'s
#: 8080-8084/8090).
KFP_UI = "http://localhost:8280"


def release_overrides(
    pipeline_configmap: Mapping[str, str], model: str, data_version: str | None = None
) -> dict[str, str]:
    """``MLPLATFORM__*`` values of one run of ``model``: the release's pipeline ConfigMap data,
    and ``MLPLATFORM__DATA__VERSION`` (``data_version``, else the ConfigMap's
    ``data-version.<model>``). Without a data version the run could only fail at its data step
    (the image holds no data), so that is refused here with what to run instead."""
    out = {k: v for k, v in pipeline_configmap.items() if k.startswith("MLPLATFORM__")}
    version = data_version or pipeline_configmap.get(f"data-version.{model}")
    if not version:
        raise SystemExit(
            f"no data version for {model}: push the datasets with `make cluster-data` (it prints "
            f"each md5), then `make pipeline-run MODEL={model} DATA_VERSION=<md5>` or set "
            f"models.{model}.dataVersion (make deploy SET=models.{model}.dataVersion=<md5>)"
        )
    out["MLPLATFORM__DATA__VERSION"] = version
    return out


def pipeline_configmap(args: argparse.Namespace) -> dict[str, str]:
    """The data of ConfigMap ``<release>-pipeline`` (``kubectl get``)."""
    cmd = [args.kubectl, "--context", args.context, "-n", args.namespace, "get", "configmap"]
    cmd += [f"{args.release}-pipeline", "-o", "json"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}: {done.stderr.strip()} (is the chart deployed?)")
    data: dict[str, str] = json.loads(done.stdout).get("data") or {}
    return data


def run_arguments(
    config: Path, overrides: Mapping[str, str], commit: str = "unknown"
) -> dict[str, str]:
    """The pipeline parameters (``config_json``, ``git_commit``) of one run."""
    from mlplatform.config import load_config
    from mlplatform.orchestration.retrain import run_config

    cfg = run_config(load_config(config, env=overrides))
    return {"config_json": cfg.to_json(), "git_commit": commit}


def version_name(pipeline: Path) -> str:
    """A pipeline version named by content: re-uploading the same YAML is a no-op."""
    return "sha-" + hashlib.sha256(pipeline.read_bytes()).hexdigest()[:12]


@contextlib.contextmanager
def kfp_host(args: argparse.Namespace) -> Iterator[str]:
    """``--host`` as given, or a port-forward to the KFP API for the duration of the block."""
    if args.host:
        yield args.host
        return
    with forward(
        args.kubectl, args.context, args.kfp_namespace, "ml-pipeline", 8888, LOCAL_PORT
    ) as url:
        yield url


def client(host: str) -> Any:
    import kfp

    return kfp.Client(host=host)


def upload(c: Any, pipeline: Path) -> None:
    version = version_name(pipeline)
    pipeline_id = c.get_pipeline_id(PIPELINE_NAME)
    if pipeline_id is None:
        # KFP names the first version after the pipeline; the content-named version below
        # is what makes a second upload of the same YAML a no-op.
        pipeline_id = c.upload_pipeline(str(pipeline), pipeline_name=PIPELINE_NAME).pipeline_id
        print(f"uploaded pipeline {PIPELINE_NAME} ({pipeline_id})")
    existing = c.list_pipeline_versions(pipeline_id, page_size=100).pipeline_versions or []
    if any(v.display_name == version for v in existing):
        print(f"pipeline {PIPELINE_NAME} version {version} already uploaded")
        return
    c.upload_pipeline_version(str(pipeline), pipeline_version_name=version, pipeline_id=pipeline_id)
    print(f"uploaded pipeline {PIPELINE_NAME} version {version}")


def run(c: Any, args: argparse.Namespace) -> None:
    from mlplatform.orchestration.runner import git_commit

    model = args.config.stem
    overrides = release_overrides(pipeline_configmap(args), model, args.data_version)
    arguments = run_arguments(args.config, overrides, git_commit(ROOT))
    print(f"{model}: data version {overrides['MLPLATFORM__DATA__VERSION']}")
    name = f"{args.config.stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    result = c.create_run_from_pipeline_package(
        str(args.pipeline), arguments=arguments, run_name=name, experiment_name=EXPERIMENT
    )
    print(f"run {name}: {result.run_id}")
    print(f"  UI (make kfp-ui): {KFP_UI}/#/runs/details/{result.run_id}")
    if args.wait:
        done = c.wait_for_run_completion(result.run_id, timeout=args.wait)
        print(f"  state: {done.state}")
        if done.state != "SUCCEEDED":
            raise SystemExit(1)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("command", choices=["upload", "run"])
    p.add_argument("--host", help="KFP API URL; default: a port-forward to svc/ml-pipeline.")
    p.add_argument("--context", default="kind-mlplatform", help="kubectl context.")
    p.add_argument("--kubectl", default="kubectl", help="kubectl binary.")
    p.add_argument("--kfp-namespace", default="kubeflow")
    p.add_argument("--pipeline", type=Path, default=PIPELINE, help="Compiled pipeline YAML.")
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "house-price.yaml")
    p.add_argument("--release", default="mlplatform", help="Helm release of the platform.")
    p.add_argument("--namespace", default="mlplatform", help="Namespace of the release.")
    p.add_argument("--data-version", help="DVC md5 to train on (default: the release's).")
    p.add_argument("--wait", type=int, default=0, help="Wait this many seconds for the run.")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    with kfp_host(args) as host:
        c = client(host)
        if args.command == "upload":
            upload(c, args.pipeline)
        else:
            run(c, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
