"""`mlplatform serve` and `mlplatform rollout` as the README walks them, against one real serve
stack (router, stable predictor, transformer, explainer) started once for the module, whose
online store is applied but never materialized and whose registry has a champion only.

What a newcomer meets: serve without a champion says what to run; the transformer's entity ids
wait for `features materialize` (serve says so at start, the 503 says so) and then answer with
the router's request id, which feedback accepts; a challenger registered after serve started is
deployed as the canary by serve itself, and rollout waits for it, says what traffic it needs
and how far each step is, then promotes it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from tests.support.servers import free_port, post, setup_model, write_config
from typer.testing import CliRunner

from mlplatform.cli import app
from mlplatform.features import apply, feature_store
from mlplatform.registry.mlflow_registry import CHALLENGER, CHAMPION, Registry
from mlplatform.serving.tokens import ADMIN_TOKEN_ENV, local_tokens

pytestmark = pytest.mark.slow
PORTS = ("router_port", "router_admin_port", "stable_port", "canary_port")
PORTS += ("transformer_port", "explainer_port")
ROLLOUT = {
    "steps": (50, 100),
    "min_requests": 30,
    "max_step_seconds": 120,
    "max_p95_latency_ratio": 20.0,  # a predictor that just started is slow at first
    "max_ground_truth_error_ratio": None,
    "min_explain_fidelity": None,
}


class Output:
    """Everything a child process prints, read by a thread (its pipe never fills)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.text, self.closed, self._changed = "", False, threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with self._changed:
                self.text += line
                self._changed.notify_all()
        with self._changed:
            self.closed = True  # the process exited: nothing more will come
            self._changed.notify_all()

    def close(self, proc: subprocess.Popen[str]) -> None:
        """After ``proc`` exited: the rest of its output read, its pipe closed."""
        self._thread.join(30)
        assert proc.stdout is not None
        proc.stdout.close()

    def wait_for(self, pattern: str, timeout: float) -> str:
        """The output once ``pattern`` (a regex) occurs in it; fails after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not re.search(pattern, self.text):
                left = deadline - time.monotonic()
                assert left > 0, f"no {pattern!r} after {timeout} s:\n{self.text[-3000:]}"
                assert not self.closed, f"exited without {pattern!r}:\n{self.text[-3000:]}"
                self._changed.wait(min(left, 1.0))
        return self.text


def spawn(*args: str, cwd: Path) -> tuple[subprocess.Popen[str], Output]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlplatform.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200"},
    )
    return proc, Output(proc)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    tmp = tmp_path_factory.mktemp("serve-cli")
    cfg, _, model = setup_model(tmp, "credit-risk")
    repo = tmp / "fresh_repo"  # definitions applied (as a pipeline run does), never materialized
    repo.mkdir()
    (repo / "feature_store.yaml").write_text((tmp / "feature_repo/feature_store.yaml").read_text())
    cfg = cfg.with_overrides(
        feature_store={"repo_dir": str(repo)},
        serve={p: free_port() for p in PORTS},
        rollout=ROLLOUT,
    )
    apply(feature_store(repo), [cfg])
    path = write_config(cfg, tmp / "serve.yaml")
    proc, out = spawn("serve", "--config", str(path), "--registry-poll", "0.5", cwd=tmp)
    try:
        out.wait_for("a challenger registered from now on", timeout=420)  # loaded: minutes
        yield {"cfg": cfg, "path": path, "model": model, "tmp": tmp, "out": out}
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        proc.wait(60)
        out.close(proc)


def router(cfg: object, path: str) -> str:
    return f"http://127.0.0.1:{cfg.serve.router_port}{path}"  # type: ignore[attr-defined]


def test_serve_without_a_champion_names_the_command_to_run(tmp_path: Path, stack: dict) -> None:
    cfg = stack["cfg"].with_overrides(  # a registry nothing was ever registered in
        registry={"tracking_uri": f"sqlite:///{tmp_path}/empty.db"}
    )
    path = write_config(cfg, tmp_path / "fresh.yaml")
    result = CliRunner().invoke(app, ["serve", "--config", str(path)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    assert f"run `mlplatform pipeline run --config {path}` first" in lines[0]
    assert "Traceback" not in result.output


def test_serve_says_at_start_that_the_online_store_needs_materialize(stack: dict) -> None:
    printed = stack["out"].wait_for("a challenger registered from now on", timeout=1)
    note = [line for line in printed.splitlines() if line.startswith("note:")]
    assert any(f"mlplatform features materialize --config {stack['path']}" in n for n in note)


def test_transformer_ids_wait_for_materialize_then_answer_with_the_routers_request_id(
    stack: dict,
) -> None:
    cfg, path, model = stack["cfg"], stack["path"], stack["model"]
    data = pd.read_parquet(cfg.data_path)
    ids = [int(i) for i in data[cfg.entity].head(3)]
    transformer = f"http://127.0.0.1:{cfg.serve.transformer_port}/v1/models/credit-risk:predict"
    body = {"instances": [{cfg.entity: i} for i in ids]}
    before = post(transformer, json=body)
    assert before.status_code == 503, before.text  # a missing prerequisite, not bad input
    assert f"`mlplatform features materialize --config {path}`" in before.json()["error"]

    done = CliRunner().invoke(app, ["features", "materialize", "--config", str(path)])
    assert done.exit_code == 0, done.output
    after = post(transformer, json=body)
    assert after.status_code == 200, after.text
    expected = model.predict(data.set_index(cfg.entity).loc[ids].reset_index())
    np.testing.assert_allclose(after.json()["predictions"], expected, rtol=1e-12)
    rid = after.headers.get("x-request-id")
    assert rid, dict(after.headers)
    unknown = post(transformer, json={"instances": [{cfg.entity: 4242424}]})
    assert unknown.status_code == 400, unknown.text  # materialized: an unknown id is bad input

    token = {"Authorization": f"Bearer {local_tokens(cfg.artifacts_dir).feedback}"}
    label = [int(x) for x in data.set_index(cfg.entity).loc[ids, cfg.target]]
    fed = post(router(cfg, "/v1/feedback"), json={"request_id": rid, "label": label}, headers=token)
    assert fed.status_code == 200 and fed.json()["stored"] == 1, fed.text
    made_up = post(
        router(cfg, "/v1/feedback"), json={"request_id": "x-1", "label": 1}, headers=token
    )
    assert made_up.status_code == 404, made_up.text  # only ids the router issued are accepted


def test_rollout_without_a_challenger_says_what_to_run(
    stack: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg, path = stack["cfg"], stack["path"]
    reg = Registry(cfg.registry)
    chall, champ = reg.by_alias(cfg.model_name, CHALLENGER), reg.by_alias(cfg.model_name, CHAMPION)
    assert chall is None or chall.version == champ.version  # no challenger pending
    monkeypatch.setenv(ADMIN_TOKEN_ENV, local_tokens(cfg.artifacts_dir).admin)
    result = CliRunner().invoke(app, ["rollout", "--config", str(path)])
    assert result.exit_code == 2, result.output
    assert "has no challenger to roll out" in result.output
    assert f"`mlplatform retrain --config {path}`" in result.output


def test_a_challenger_registered_after_start_is_deployed_by_serve_and_rolled_out(
    stack: dict,
) -> None:
    cfg, path, model = stack["cfg"], stack["path"], stack["model"]
    reg = Registry(cfg.registry)
    saved = model.save(stack["tmp"] / "challenger.json")
    version = reg.log_and_register(saved, {}, {"rmse": 1.0}, [], {"data_md5": "test"}).version
    reg.set_alias(cfg.model_name, CHALLENGER, version, "test: registered after serve started")

    rollout, out = spawn("rollout", "--config", str(path), "--canary-wait", "150", cwd=stack["tmp"])
    traffic = Traffic(router(cfg, "/v1/models/credit-risk:predict"))
    try:
        text = out.wait_for(r"canary at 50% \(step 1/2\)", timeout=240)
        url = router(cfg, "/v1/models/credit-risk:predict")
        assert f"send traffic: POST {url}" in text
        # no traffic yet: the step says how far it is and how long it may still wait
        out.wait_for(r"step 1/2 at 50%: 0/30 canary requests, judged in at most \d+ s", 30)
        traffic.start()
        rollout.wait(180)
    finally:
        traffic.stop()
        if rollout.poll() is None:
            rollout.kill()
            rollout.wait()
        out.close(rollout)
    text = out.wait_for(f"{cfg.model_name}: (promoted|rolled_back)", timeout=5)
    assert rollout.returncode == 0, text[-3000:]
    served = stack["out"].wait_for(f"challenger v{version} registered: canary predictor", 1)
    assert "attached at 0 % of traffic" in served
    assert reg.by_alias(cfg.model_name, CHAMPION).version == version  # type: ignore[union-attr]
    assert traffic.failures == [] and traffic.sent > 0


class Traffic:
    """One client thread posting single rows to the router until stopped."""

    def __init__(self, url: str) -> None:
        self.url, self.sent = url, 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(30)

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                r = client.post(self.url, json={"instances": [[40, 2e7, 0.2, 0, 5]]})
                self.sent += 1
                if r.status_code != 200:
                    self.failures.append(f"{r.status_code}: {r.text[:200]}")
