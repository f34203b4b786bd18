"""SIGTERM to a real rollout controller process mid-rollout, then a restart (issue 13): the
first process stops in order, leaving the router's split at the step it reached and the step
recorded on the challenger's version in a real MLflow registry; the second resumes at that
step (not at 10 %) and promotes. Stand-in predictors and the router run on loopback; the
controller runs as ``python -m mlplatform.serving.rollout``, as the chart runs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from tests.support.router import MODEL, ROOT, body, register, router_config, running, stand_in

from mlplatform.config import RegistryConfig
from mlplatform.registry.mlflow_registry import CHALLENGER, CHAMPION, Registry
from mlplatform.serving.rollout_state import STATE_TAG
from mlplatform.serving.router import RouterSettings, create_admin_app, create_app
from mlplatform.serving.tokens import ADMIN_TOKEN_ENV

pytestmark = pytest.mark.slow

ROLLOUT = {
    "steps": [10, 50, 100],
    "min_requests": 40,
    "max_step_seconds": 60,
    "max_p95_latency_ratio": 5.0,
    "max_prediction_shift": 0.3,
    "min_explain_fidelity": 0.5,
}


def controller(config: Path, url: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "mlplatform.serving.rollout", "--config", str(config)]
    return subprocess.Popen(
        [*command, "--router-url", url, "--poll-seconds", "0.05"],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", ADMIN_TOKEN_ENV: "adm"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def state(reg: Registry, version: str) -> dict[str, object] | None:
    tag = reg.version(MODEL, version).tags.get(STATE_TAG)
    return None if tag is None else dict(json.loads(tag))


class Clients:
    """Two client threads posting predictions while ``on`` is set; every non-200 recorded."""

    def __init__(self, url: str) -> None:
        self.url, self.on, self.done = url, threading.Event(), threading.Event()
        self.failures: list[str] = []
        self.threads = [threading.Thread(target=self._run) for _ in range(2)]

    def _run(self) -> None:
        with httpx.Client(timeout=30) as c:
            while not self.done.is_set():
                if not self.on.wait(0.05):
                    continue
                r = c.post(f"{self.url}/v1/models/{MODEL}:predict", json=body(5))
                if r.status_code != 200:
                    self.failures.append(f"{r.status_code} {r.text}")

    def __enter__(self) -> Clients:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        for t in self.threads:
            t.join(30)


def test_sigterm_mid_rollout_then_restart_resumes_at_the_same_step(tmp_path: Path) -> None:
    reg = Registry(
        RegistryConfig(tracking_uri=f"sqlite:///{tmp_path}/m.db", artifact_root=str(tmp_path))
    )
    reg.client.create_registered_model(MODEL)
    reg.set_alias(MODEL, CHAMPION, register(reg), "first model")
    version = register(reg)
    reg.set_alias(MODEL, CHALLENGER, version, "second model")
    cfg = router_config(tmp_path, canary_percent=0).with_overrides(
        registry={"tracking_uri": reg.cfg.tracking_uri, "artifact_root": str(tmp_path)},
        rollout=ROLLOUT,
    )
    config = tmp_path / "rollout.yaml"
    config.write_text(cfg.to_json(), encoding="utf-8")
    with (
        running(stand_in(0.0, version="1")) as stable,
        running(stand_in(0.0, version=version)) as canary,
    ):
        settings = RouterSettings(stable, canary, canary_version=version, admin_token="adm")
        app = create_app(cfg, settings)
        router = app.state.router
        with (
            running(app) as url,
            running(create_admin_app(router)) as admin,
            Clients(url) as clients,
        ):
            first = controller(config, admin)
            clients.on.set()
            deadline = time.monotonic() + 60
            while router.routing.canary_percent != 50 and time.monotonic() < deadline:
                time.sleep(0.002)
            clients.on.clear()  # no more canary requests: step 2 cannot finish
            assert router.routing.canary_percent == 50, first.communicate(timeout=5)[0]
            while (state(reg, version) or {}).get("step") != 1:  # step 1 recorded: mid-step 2
                assert time.monotonic() < deadline and first.poll() is None, "no step recorded"
                time.sleep(0.02)
            first.send_signal(signal.SIGTERM)
            out, _ = first.communicate(timeout=30)
            assert first.returncode == 1, out  # exits with the one-line reason
            assert "rollout stopped at step 2 (50%)" in out, out
            assert router.routing.canary_percent == 50  # traffic left as it was
            recorded = state(reg, version)
            assert recorded is not None and recorded["step"] == 1, recorded
            assert recorded["outcome"] is None
            assert "canary requests" in str(recorded["last_decision"])

            second = controller(config, admin)
            clients.on.set()
            out, _ = second.communicate(timeout=120)
    assert second.returncode == 0, out
    assert f"resuming v{version} at step 2" in out and "promoted" in out
    assert "canary at 10%" not in out and out.index("canary at 50%") < out.index("canary at 100%")
    assert clients.failures == []
    assert reg.by_alias(MODEL, CHAMPION).version == version  # type: ignore[union-attr]
    assert state(reg, version)["outcome"] == "promoted"  # type: ignore[index]
