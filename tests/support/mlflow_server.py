"""MLflow as the cluster runs it: a real ``mlflow server`` process with a PostgreSQL backend
store and proxied artifacts in S3, the S3 being moto's server on loopback.

The chart runs ``mlflow server --serve-artifacts --artifacts-destination s3://<bucket>`` with
``MLFLOW_S3_ENDPOINT_URL`` and the S3 keys in its environment; clients only talk HTTP to it
and use ``mlflow-artifacts:/...`` as the experiments' artifact root. These helpers start the
same thing on free loopback ports and tear it down afterwards:

    with moto_s3() as s3, fresh_postgres() as db, mlflow_server(db, s3, tmp) as url:
        Registry(RegistryConfig(tracking_uri=url, artifact_root="mlflow-artifacts:/t"))
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from mlplatform.serving.stack import free_port

#: Test credentials: moto accepts any key; they only have to be present.
TEST_KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
REGION = "us-east-1"


@dataclass(frozen=True)
class S3:
    """An S3-compatible endpoint on loopback and one empty bucket in it."""

    endpoint: str
    bucket: str

    @property
    def env(self) -> dict[str, str]:
        """What a pod of the chart gets: the endpoint as MLflow reads it, keys and region."""
        return {
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": REGION,
            **TEST_KEYS,
        }

    def client(self) -> Any:
        """A plain boto3 S3 client for this endpoint (what a test reads objects back with)."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=TEST_KEYS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=TEST_KEYS["AWS_SECRET_ACCESS_KEY"],
        )


@contextmanager
def moto_s3() -> Iterator[S3]:
    """moto's S3 server on a free loopback port with a fresh bucket; stopped afterwards."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not one line per S3 request
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        s3 = S3(f"http://127.0.0.1:{port}", f"mlp-test-{uuid.uuid4().hex[:12]}")
        s3.client().create_bucket(Bucket=s3.bucket)
        yield s3
    finally:
        server.stop()


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
    raise RuntimeError(f"mlflow server at {url} did not become healthy:\n{tail}")


@contextmanager
def mlflow_server(
    backend_store_uri: str, s3: S3, workdir: Path, timeout: float = 180.0
) -> Iterator[str]:
    """``mlflow server`` with ``backend_store_uri`` and artifacts proxied to
    ``s3://<bucket>/mlflow``; its ``http://127.0.0.1:<port>`` URL; stopped afterwards."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    mlflow = Path(sys.executable).with_name("mlflow")
    args = [
        str(mlflow),
        "server",
        f"--backend-store-uri={backend_store_uri}",
        f"--artifacts-destination=s3://{s3.bucket}/mlflow",
        "--serve-artifacts",
        "--host=127.0.0.1",
        f"--port={port}",
        "--workers=1",
    ]
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "mlflow-server.log"
    env = {**os.environ, **s3.env, "MLFLOW_TMP_DIR": str(workdir)}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_healthy(url, proc, log, timeout)
        yield url
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server and its workers (its own process group, started above)."""
    import signal

    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def register_version(
    cfg: Any, tmp: Path, lineage: dict[str, str] | None = None
) -> tuple[str, Path, Any]:
    """Train ``cfg`` on freshly generated data and run the register stage with the files the
    pipeline hands it (a passed gate); (the version, its model file, the reference sample)."""
    import pandas as pd

    from mlplatform.core.training import split_frame
    from mlplatform.stages import generate_data, register_step, train_job
    from mlplatform.stages.io import write_json
    from mlplatform.stages.register import reference_sample

    data = generate_data(cfg)
    outputs = train_job(cfg, data)
    train = tmp / "train.parquet"
    split_frame(cfg, pd.read_parquet(data)).train.to_parquet(train, index=False)
    paths = {
        "model": outputs.files["model"],
        "metrics": outputs.files["metrics"],
        "quality": write_json(tmp / "quality.json", {"lime_fidelity_r2_mean": 0.9}),
        "gate": write_json(tmp / "gate.json", {"passed": True, "checks": []}),
        "train": train,
        "reports": [outputs.files["loss_curve"]],
    }
    version = register_step(cfg, paths, lineage or {"data_md5": "x", "trigger": "manual"})
    return version, outputs.files["model"], reference_sample(cfg, pd.read_parquet(train))
