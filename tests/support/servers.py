"""Real model servers for tests: a small trained and registered model, and the KServe server
processes started on free loopback ports."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import yaml

from mlplatform.config import PlatformConfig, load_config
from mlplatform.core.model import LinearModel
from mlplatform.features import apply, feature_store, materialize
from mlplatform.registry.mlflow_registry import CHAMPION, Registry
from mlplatform.serving.stack import free_port
from mlplatform.stages import generate_data, train_job

ROOT = Path(__file__).resolve().parents[2]

__all__ = ["ROOT", "free_port", "post", "setup_model", "start", "write_config"]


def post(url: str, **kw: object) -> httpx.Response:
    return httpx.post(url, timeout=kw.pop("timeout", 60), **kw)  # type: ignore[arg-type]


def write_config(cfg: PlatformConfig, path: Path) -> Path:
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json", by_alias=True)))
    return path


def setup_model(tmp: Path, name: str) -> tuple[PlatformConfig, Path, LinearModel]:
    """Train a small model, register it as champion, materialize its features."""
    (tmp / "feature_repo").mkdir(exist_ok=True)
    (tmp / "feature_repo" / "feature_store.yaml").write_text(
        (ROOT / "feature_repo/feature_store.yaml").read_text()
    )
    cfg = load_config(ROOT / f"configs/{name}.yaml", env={}).with_overrides(
        artifacts_dir=str(tmp / "artifacts"),  # type: ignore[arg-type]
        data={"rows": 800, "data_dir": str(tmp / "data")},
        train={"epochs": 300},
        explain={"num_samples": 500, "stability_seeds": 2, "coverage_samples": 1000},
        registry={"tracking_uri": f"sqlite:///{tmp}/mlflow.db", "artifact_root": str(tmp / "ml")},
        feature_store={"repo_dir": str(tmp / "feature_repo")},
        # 1 MB bodies at most: the cap tests send bodies just over it
        serve={"payload_store": f"sqlite:///{tmp}/payloads.db", "max_body_bytes": 1_000_000},
    )
    model_path = train_job(cfg, generate_data(cfg)).files["model"]
    reg = Registry(cfg.registry)
    version = reg.log_and_register(model_path, {}, {"rmse": 1.0}, [], {"data_md5": "test"})
    reg.set_alias(cfg.model_name, CHAMPION, version.version, "test")
    store = feature_store(cfg.feature_store.repo_dir)
    apply(store, [cfg])
    materialize(store, end=datetime.now(UTC))
    return cfg, write_config(cfg, tmp / f"{name}.yaml"), LinearModel.load(model_path)


def start(server: str, args: list[str], port: int, log: Path) -> subprocess.Popen[bytes]:
    """``python -m mlplatform.serving <server> <args> --http_port <port>``, once it is ready."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlplatform.serving", server, *args, "--http_port", str(port)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-2000:]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise AssertionError(f"{server} did not start: {log.read_text()[-2000:]}")
