"""Serving benchmarks, every baseline measured in the same run on loopback.

1. The KServe predictor (v1 ``:predict``, one row) against a plain FastAPI endpoint that
   calls the same model: p50/p99 latency of sequential requests and requests/s with 4 clients.
2. A served LIME explanation (``:explain`` of the explainer, which predicts in-process while
   the predictor serves its model version) against the in-process engine (the same
   ``lime_explain_batch`` with the model in memory), with the HTTP floor beside it.
"""

from __future__ import annotations

import http.client
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import yaml

from mlplatform.config import load_config
from mlplatform.core.explain.lime import lime_explain_batch
from mlplatform.core.model import LinearModel
from mlplatform.core.training import explain_target
from mlplatform.serving.stack import free_port
from mlplatform.stages import generate_data, train_job

Row = dict[str, Any]
ROW = [[40, 2e7, 0.2, 0, 5]]
PLAIN_APP = """
import sys
from fastapi import FastAPI, Request
from mlplatform.core.model import LinearModel
model = LinearModel.load(sys.argv[1])
app = FastAPI()

@app.post("/v1/models/credit-risk:predict")
async def predict(request: Request) -> dict:
    body = await request.json()
    return {"predictions": model.predict(model.frame(body["instances"])).tolist()}

@app.get("/healthz")
async def health() -> dict:
    return {"ok": True}

if __name__ == "__main__":
    import uvicorn
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


def _wait(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {url}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.3)
    raise RuntimeError(f"not ready: {url}")


def _latencies(url: str, n: int = 400) -> np.ndarray:
    out = []
    with httpx.Client() as c:
        for _ in range(20):
            c.post(url, json={"instances": ROW})
        for _ in range(n):
            t = time.perf_counter()
            c.post(url, json={"instances": ROW}).raise_for_status()
            out.append(time.perf_counter() - t)
    return np.asarray(out)


def _throughput(url: str, clients: int = 4, seconds: float = 3.0) -> float:
    count, lock, stop = [0], threading.Lock(), threading.Event()

    def run() -> None:
        with httpx.Client() as c:
            while not stop.is_set():
                c.post(url, json={"instances": ROW}).raise_for_status()
                with lock:
                    count[0] += 1

    threads = [threading.Thread(target=run) for _ in range(clients)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    return count[0] / seconds


def _setup(tmp: Path) -> tuple[Path, Path]:
    cfg = load_config("configs/credit-risk.yaml", env={}).with_overrides(
        artifacts_dir=str(tmp / "artifacts"),  # type: ignore[arg-type]
        data={"rows": 2000, "data_dir": str(tmp / "data")},
    )
    model = train_job(cfg, generate_data(cfg)).files["model"]
    path = tmp / "credit-risk.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json", by_alias=True)))
    return path, model


def _start(args: list[str], health: str, log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, *args], stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    _wait(health, proc)
    return proc


def run() -> list[Row]:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        cfg_path, model_path = _setup(tmp)
        p_pred, p_plain, p_expl = free_port(), free_port(), free_port()
        (tmp / "plain.py").write_text(PLAIN_APP)
        common = [
            "--config",
            str(cfg_path),
            "--model_name",
            "credit-risk",
            "--model_file",
            str(model_path),
        ]
        procs = [
            _start(
                ["-m", "mlplatform.serving", "predictor", *common, "--http_port", str(p_pred)],
                f"http://127.0.0.1:{p_pred}/v2/health/ready",
                tmp / "pred.log",
            ),
            _start(
                [str(tmp / "plain.py"), str(model_path), str(p_plain)],
                f"http://127.0.0.1:{p_plain}/healthz",
                tmp / "plain.log",
            ),
            _start(
                [
                    "-m",
                    "mlplatform.serving",
                    "explainer",
                    *common,
                    "--http_port",
                    str(p_expl),
                    "--predictor_host",
                    f"127.0.0.1:{p_pred}",
                ],
                f"http://127.0.0.1:{p_expl}/v2/health/ready",
                tmp / "expl.log",
            ),
        ]
        try:
            lime = _lime_row(cfg_path, model_path, p_expl, p_pred)
            return [*_predictor_rows(p_pred, p_plain), lime]
        finally:
            for p in procs:
                p.terminate()
                p.wait(20)


def _predictor_rows(p_pred: int, p_plain: int) -> list[Row]:
    path = "/v1/models/credit-risk:predict"
    ours = _latencies(f"http://127.0.0.1:{p_pred}{path}")
    plain = _latencies(f"http://127.0.0.1:{p_plain}{path}")
    rps_ours = _throughput(f"http://127.0.0.1:{p_pred}{path}")
    rps_plain = _throughput(f"http://127.0.0.1:{p_plain}{path}")
    p50, p50b = float(np.median(ours)), float(np.median(plain))
    return [
        {
            "benchmark": "KServe predictor v1 :predict, one row, p50 (sequential)",
            "baseline": "plain FastAPI endpoint, same model",
            "ours": p50 * 1e3,
            "baseline_value": p50b * 1e3,
            "ratio": p50 / p50b,
            "unit": "ms",
            "target": "p50 ≤ 1.5× plain",
            "ok": p50 / p50b <= 1.5,
            "notes": f"p99 {np.quantile(ours, 0.99) * 1e3:.2f} ms vs "
            f"{np.quantile(plain, 0.99) * 1e3:.2f} ms",
        },
        {
            "benchmark": "KServe predictor requests/s, 4 clients, one row",
            "baseline": "plain FastAPI endpoint, same model",
            "ours": rps_ours,
            "baseline_value": rps_plain,
            "ratio": rps_ours / rps_plain,
            "unit": "req/s",
            "target": "(reported)",
            "ok": True,
            "notes": "",
        },
    ]


def _lime_row(cfg_path: Path, model_path: Path, p_expl: int, p_pred: int) -> Row:
    """The explainer predicts in-process here (the predictor serves the same model file).
    Served times use a keep-alive ``http.client`` connection, so that they measure the server
    rather than the client; the notes give httpx's figure and two floors with the same client:
    a one-row ``:predict`` of the predictor (KServe plus parsing and predicting one row) and
    KServe's model-ready ``GET`` on the explainer (KServe's round trip, no model work). All
    five are timed in turn."""
    cfg = load_config(cfg_path, env={})
    model = LinearModel.load(model_path)
    x = model.encode(model.frame(ROW))
    target = explain_target(cfg, model)  # as the explainer: built once per loaded model

    def local() -> None:
        lime_explain_batch(target, x, cfg.explain, np.random.default_rng(0))

    path = "/v1/models/credit-risk:explain"
    body = {"instances": ROW, "explainers": ["lime"]}
    floor = _raw_post(p_pred, "/v1/models/credit-risk:predict", {"instances": ROW})
    with httpx.Client(timeout=60) as c:
        t_local, t_served, t_floor, t_httpx, t_ready = _median_times(
            [
                local,
                _raw_post(p_expl, path, body),
                floor,
                lambda: c.post(f"http://127.0.0.1:{p_expl}{path}", json=body).raise_for_status(),
                _raw_get(p_expl, "/v1/models/credit-risk"),
            ]
        )
    return {
        "benchmark": f"served LIME explanation, one row, {cfg.explain.num_samples} samples",
        "baseline": "in-process lime_explain_batch, same model",
        "ours": t_served * 1e3,
        "baseline_value": t_local * 1e3,
        "ratio": t_served / t_local,
        "unit": "ms",
        "target": "≤ 1.5× in-process",
        "ok": t_served / t_local <= 1.5,
        "notes": f"explainer predicts in-process (same version as the predictor); HTTP floor "
        f"(one-row :predict) {t_floor * 1e3:.2f} ms, served − floor "
        f"{(t_served - t_floor) / t_local:.2f}× in-process; KServe GET model-ready "
        f"{t_ready * 1e3:.2f} ms; with httpx {t_httpx * 1e3:.2f} ms",
    }


def _raw_post(port: int, path: str, body: Row) -> Any:
    """A POST on one keep-alive connection (``http.client``: little client-side cost)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    data, headers = orjson.dumps(body), {"content-type": "application/json"}

    def post() -> None:
        conn.request("POST", path, data, headers)
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200, resp.status

    return post


def _raw_get(port: int, path: str) -> Any:
    """A GET on one keep-alive connection, as :func:`_raw_post`."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def get() -> None:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200, resp.status

    return get


def _median_times(fns: list[Any], rounds: int = 30, block: int = 10) -> list[float]:
    """Median seconds per call of each of ``fns``, timed in turn: ``block`` calls of each per
    round, so that a change of machine load falls on all of them alike (and a server is not
    woken cold on every call)."""
    times: list[list[float]] = [[] for _ in fns]
    for r in range(rounds + 1):
        for fn, out in zip(fns, times, strict=True):
            for _ in range(block):
                t = time.perf_counter()
                fn()
                if r:  # round 0 warms up
                    out.append(time.perf_counter() - t)
    return [float(np.median(t)) for t in times]


if __name__ == "__main__":
    for row in run():
        print(row)
