"""Dependencies down: a 503 naming the reason, within a bounded time, never a wrong 4xx or a
silent skip.

Real processes stand in for the cluster's: a private ``redis-server`` as Feast's online store
(behind the real transformer and predictor servers) and a real ``mlflow server`` as the
registry. Each is first shown working (the control), then frozen (SIGSTOP: connections hang)
or killed (connections refused), and the answer and its delay are checked.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from tests.support.servers import free_port, post, start, write_config
from typer.testing import CliRunner

from mlplatform.cli import app
from mlplatform.config import PlatformConfig, RegistryConfig, load_config
from mlplatform.errors import (
    FeatureRepoError,
    ModelVersionNotFoundError,
    OnlineStoreUnavailableError,
    RegistryUnavailableError,
)
from mlplatform.features import online_rows, refresh_online
from mlplatform.monitoring.monitor import validation_error
from mlplatform.registry.mlflow_registry import CHAMPION, Registry
from mlplatform.serving.transformer import Transformer
from mlplatform.stages import generate_data, train_job

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
#: The online store's connect/read timeout in these tests; a lookup must fail within the bound.
TIMEOUT_S = 1.0
ONLINE_BOUND_S = 4 * TIMEOUT_S


# -- helpers -----------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _restore_mlflow_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registry() sets MLflow's timeout variables for its process; undo that after each test."""
    for name in ("MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_MAX_RETRIES"):
        monkeypatch.delenv(name, raising=False)


def _wait(check: object, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except Exception:  # not up yet (refused, reset, a client's own error)
            pass
        time.sleep(0.2)
    raise AssertionError(f"{what} did not come up in {timeout}s")


def _redis_server(tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A private Redis on a free loopback port, no persistence (stopped by the caller)."""
    import redis

    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port, socket_timeout=1)
    _wait(client.ping, "redis-server")
    client.close()
    return proc, port


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGCONT)
        proc.kill()
        proc.wait(10)


def _timed(call: object) -> tuple[float, BaseException | None]:
    t0 = time.monotonic()
    try:
        call()  # type: ignore[operator]
    except Exception as exc:
        return time.monotonic() - t0, exc
    return time.monotonic() - t0, None


# -- the online store (Redis) ------------------------------------------------------------------
@pytest.fixture(scope="module")
def feast_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformConfig]:
    """credit-risk with the cluster's Redis feature_store YAML, data and a trained model file."""
    tmp = tmp_path_factory.mktemp("down")
    store_yaml = tmp / "feature_repo" / "feature_store.redis.yaml"
    store_yaml.parent.mkdir()
    store_yaml.write_text((ROOT / "feature_repo/feature_store.cluster.yaml").read_text())
    cfg = load_config(ROOT / "configs/credit-risk.yaml", env={}).with_overrides(
        artifacts_dir=str(tmp / "artifacts"),  # type: ignore[arg-type]
        data={"rows": 400, "data_dir": str(tmp / "data")},
        train={"epochs": 100},
        feature_store={
            "repo_dir": str(store_yaml.parent),
            "store_yaml": str(store_yaml),
            "online_timeout_s": TIMEOUT_S,
        },
    )
    generate_data(cfg)
    train_job(cfg, cfg.data_path)
    mp = pytest.MonkeyPatch()
    mp.setenv("FEAST_REGISTRY_PATH", str(tmp / "feast" / "registry.db"))
    yield cfg
    mp.undo()


@pytest.fixture()
def redis_store(
    feast_files: PlatformConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[subprocess.Popen[bytes]]:
    """A private redis-server holding credit-risk's features (apply + materialize)."""
    proc, port = _redis_server(tmp_path)
    monkeypatch.setenv("REDIS_CONNECTION_STRING", f"127.0.0.1:{port}")
    try:
        refresh_online(feast_files)
        yield proc
    finally:
        _stop(proc)


def test_online_rows_fail_fast_with_503_when_redis_hangs_or_dies(
    feast_files: PlatformConfig, redis_store: subprocess.Popen[bytes]
) -> None:
    from mlplatform.features import open_store

    cfg, store = feast_files, open_store(feast_files)
    ids = [1, 2, 3]
    assert len(online_rows(store, cfg, ids)) == 3  # the control: Redis answers

    redis_store.send_signal(signal.SIGSTOP)  # frozen: connected, never answers
    took, exc = _timed(lambda: online_rows(store, cfg, ids))
    assert isinstance(exc, OnlineStoreUnavailableError), exc
    assert exc.status == 503 and "online store (redis) unavailable" in str(exc)
    assert took < ONLINE_BOUND_S, f"a hung Redis took {took:.1f}s to report"

    redis_store.send_signal(signal.SIGCONT)  # back: the next lookup works again
    assert len(online_rows(store, cfg, ids)) == 3

    redis_store.kill()  # gone: connection refused
    redis_store.wait(10)
    took, exc = _timed(lambda: online_rows(store, cfg, ids))
    assert isinstance(exc, OnlineStoreUnavailableError), exc
    assert "Connection refused" in str(exc) and "\n" not in str(exc)
    assert took < ONLINE_BOUND_S, f"a dead Redis took {took:.1f}s to report"


def test_transformer_answers_503_with_the_reason_when_redis_is_down(
    feast_files: PlatformConfig, redis_store: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    cfg = feast_files
    config = write_config(cfg, tmp_path / "credit-risk.yaml")
    common = ["--config", str(config), "--model_name", "credit-risk"]
    model_file = ["--model_file", str(cfg.model_dir / "model.json")]
    pred_port, tr_port = free_port(), free_port()
    procs = [start("predictor", common + model_file, pred_port, tmp_path / "pred.log")]
    try:
        host = ["--predictor_host", f"127.0.0.1:{pred_port}"]
        procs.append(start("transformer", common + host, tr_port, tmp_path / "tr.log"))
        url = f"http://127.0.0.1:{tr_port}/v1/models/credit-risk:predict"
        body = {"instances": [{"applicant_id": 1}, {"applicant_id": 2}]}
        ok = post(url, json=body)
        assert ok.status_code == 200 and len(ok.json()["predictions"]) == 2, ok.text

        redis_store.send_signal(signal.SIGSTOP)
        t0 = time.monotonic()
        hung = post(url, json=body, timeout=30)
        took = time.monotonic() - t0
        assert hung.status_code == 503, hung.text
        assert "online store (redis) unavailable" in hung.json()["error"]
        assert took < ONLINE_BOUND_S, f"503 after {took:.1f}s"

        redis_store.kill()
        redis_store.wait(10)
        t0 = time.monotonic()
        dead = post(url, json=body, timeout=30)
        assert dead.status_code == 503 and "Connection refused" in dead.json()["error"], dead.text
        assert time.monotonic() - t0 < ONLINE_BOUND_S
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)


def test_transformer_without_a_feature_repo_answers_503(tmp_path: Path) -> None:
    cfg = load_config(ROOT / "configs/credit-risk.yaml", env={}).with_overrides(
        feature_store={"repo_dir": str(tmp_path / "no-repo")}
    )
    transformer = Transformer(cfg, "credit-risk")
    assert transformer.load() and transformer.ready  # raw rows still pass through
    raw = {"instances": [[40, 20_000_000, 0.2, 0, 5]]}
    assert asyncio.run(transformer.preprocess(raw)) == raw
    with pytest.raises(FeatureRepoError) as err:
        asyncio.run(transformer.preprocess({"instances": [{"applicant_id": 1}]}))
    assert err.value.status == 503
    assert "no feature store config" in str(err.value) and "no-repo" in str(err.value)


# -- the registry (MLflow) ---------------------------------------------------------------------
def _closed_registry(**overrides: object) -> RegistryConfig:
    """A registry URI where nothing listens (connection refused)."""
    uri = f"http://127.0.0.1:{free_port()}"
    return RegistryConfig.model_validate({"tracking_uri": uri, **overrides})


def test_unreachable_registry_is_503_not_no_alias() -> None:
    reg = Registry(_closed_registry())  # the defaults: 10 s timeout, 2 retries
    took, exc = _timed(lambda: reg.holder("credit-risk", CHAMPION))
    assert isinstance(exc, RegistryUnavailableError), exc
    assert not isinstance(exc, ModelVersionNotFoundError)
    assert exc.status == 503 and "Connection refused" in str(exc) and "\n" not in str(exc)
    assert took < 30, f"an unreachable registry took {took:.1f}s to report"
    with pytest.raises(RegistryUnavailableError):
        reg.by_alias("credit-risk", CHAMPION)  # not None ("no alias")
    with pytest.raises(RegistryUnavailableError):
        reg.version("credit-risk", "1")


@pytest.fixture()
def mlflow_server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A real ``mlflow server`` (SQLite backend, local artifacts) in its own process group."""
    port = free_port()
    args = [str(Path(sys.executable).with_name("mlflow")), "server", "--host=127.0.0.1",
            f"--port={port}", "--workers=1", f"--backend-store-uri=sqlite:///{tmp_path}/m.db",
            f"--default-artifact-root={tmp_path / 'artifacts'}"]  # fmt: skip
    log = (tmp_path / "mlflow.log").open("wb")
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: httpx.get(f"{url}/health", timeout=2).status_code == 200, "mlflow", 120)
        yield proc, url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGCONT)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()


def test_registry_tells_a_missing_alias_from_an_outage(
    mlflow_server: tuple[subprocess.Popen[bytes], str],
) -> None:
    proc, url = mlflow_server
    reg = Registry(RegistryConfig(tracking_uri=url, request_timeout_s=2, request_retries=1))
    reg.client.create_registered_model("credit-risk")
    assert reg.by_alias("credit-risk", CHAMPION) is None  # the server says: no such alias
    with pytest.raises(ModelVersionNotFoundError) as missing:
        reg.holder("credit-risk", CHAMPION)
    assert missing.value.status == 404

    os.killpg(proc.pid, signal.SIGSTOP)  # frozen: accepts, never answers
    took, exc = _timed(lambda: reg.holder("credit-risk", CHAMPION))
    assert isinstance(exc, RegistryUnavailableError), exc
    assert "no answer within 2s" in str(exc), exc
    assert took < 15, f"a hung registry took {took:.1f}s to report"

    os.killpg(proc.pid, signal.SIGKILL)  # gone
    proc.wait(10)
    took, exc = _timed(lambda: reg.holder("credit-risk", CHAMPION))
    assert isinstance(exc, RegistryUnavailableError) and "Connection refused" in str(exc), exc
    assert took < 15


def test_monitor_fails_loudly_when_the_registry_is_down(tmp_path: Path) -> None:
    """No silent skip of concept drift: neither None nor the local metrics.json as the
    baseline, and the monitor job exits 2 with one line naming the registry."""
    closed = _closed_registry(request_retries=0)
    cfg = load_config(ROOT / "configs/credit-risk.yaml", env={}).with_overrides(
        artifacts_dir=str(tmp_path / "artifacts"),  # type: ignore[arg-type]
        registry=closed.model_dump(),
        serve={"payload_store": f"sqlite:///{tmp_path}/payloads.db"},
    )
    cfg.model_dir.mkdir(parents=True)
    metrics = {"metrics": {"val": {"accuracy": 0.9}}}
    (cfg.model_dir / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(RegistryUnavailableError):
        validation_error(cfg)

    config = tmp_path / "credit-risk.yaml"
    config.write_text(yaml.safe_dump(cfg.model_dump(mode="json", by_alias=True)))
    result = CliRunner().invoke(app, ["monitor", "--config", str(config)], env={})
    assert result.exit_code == 2, result.output
    err = result.stderr.strip()
    assert "Traceback" not in result.output and "\n" not in err, err
    assert err.startswith(f"error: model registry {closed.tracking_uri} is unavailable"), err
    assert "alias" not in err
