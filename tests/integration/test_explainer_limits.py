"""The explainer's cost per request, on loopback with a real predictor: in-process predictions
when the predictor serves the explainer's version, a bounded number over HTTP otherwise, and
the row, concurrency and deadline limits (issue #13).

Every explainer reaches the predictor through :class:`Proxy`, which counts the rows each
call carries and notes its traffic mark (and can be made slow)."""

from __future__ import annotations

import contextlib
import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest
from tests.support.servers import free_port, post, setup_model, start, write_config

from mlplatform.config import PlatformConfig
from mlplatform.core.explain.lime import lime_explain_batch
from mlplatform.core.training import explain_target
from mlplatform.serving.explain_predict import PROBE_ROWS
from mlplatform.serving.payloads import EXPLAINER_HEADER, EXPLAINER_TRAFFIC
from mlplatform.stages.explain import explain_row_job

pytestmark = pytest.mark.slow
MODEL = "credit-risk"
DEADLINE, DELAY = 1.5, 0.25


class Proxy:
    """A pass-through to the predictor that records (mark, rows) per call, after ``delay`` s."""

    def __init__(self, target: str, delay: float = 0.0) -> None:
        self.calls: list[tuple[str | None, int]] = []
        calls, lock = self.calls, threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                with lock:
                    calls.append((self.headers.get(EXPLAINER_HEADER), _rows(body)))
                time.sleep(delay)
                r = httpx.post(target + self.path, content=body, timeout=60)
                self.send_response(r.status_code)
                for name in ("content-type", "x-model-version"):
                    if name in r.headers:
                        self.send_header(name, r.headers[name])
                self.send_header("content-length", str(len(r.content)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError):  # the explainer stopped waiting
                    self.wfile.write(r.content)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def rows(self) -> int:
        return sum(n for _, n in self.calls)


def _rows(body: bytes) -> int:
    return len(orjson.loads(body).get("instances", []))


def _explainer(cfg: PlatformConfig, tmp: Path, name: str, proxy: Proxy, extra: list[str]) -> Any:
    path = write_config(cfg, tmp / f"{name}.yaml")
    args = ["--config", str(path), "--model_name", MODEL, "--predictor_host", proxy.host, *extra]
    port = free_port()
    return start("explainer", args, port, tmp / f"{name}.log"), f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("explainer-limits")
    cfg, cfg_path, model = setup_model(tmp, MODEL)
    pred_port = free_port()
    predictor = start("predictor", ["--config", str(cfg_path)], pred_port, tmp / "pred.log")
    target = f"http://127.0.0.1:{pred_port}"
    fast, slow = Proxy(target), Proxy(target, delay=DELAY)
    model_file = str(model.save(tmp / "model.json"))
    base = cfg.with_overrides(serve={"explain_max_rows": 5, "explain_version_check_seconds": 3600})
    tight = base.with_overrides(
        serve={"explain_max_concurrent": 1, "explain_deadline_seconds": DEADLINE}
    )
    servers = {
        # registry champion, version "1", as the predictor: predicts in-process
        "same": _explainer(base, tmp, "same", fast, []),
        # the same weights from a file, version "local": another version, so over HTTP
        "other": _explainer(base, tmp, "other", fast, ["--model_file", model_file]),
        # over HTTP to a slow predictor, one explanation at a time, a short deadline
        "tight": _explainer(tight, tmp, "tight", slow, ["--model_file", model_file]),
    }
    rows = pd.read_parquet(tmp / f"data/{MODEL}.parquet")[list(model.feature_names)].head(5)
    yield {"cfg": cfg, "model": model, "fast": fast, "slow": slow, "rows": rows, **servers}
    for proc, _ in servers.values():
        proc.terminate()
        proc.wait(10)
    predictor.terminate()
    predictor.wait(10)


def explain(url: str, rows: Any, kinds: list[str] | None = None, **kw: Any) -> httpx.Response:
    body: dict[str, Any] = {"instances": rows.values.tolist()}
    if kinds:
        body["explainers"] = kinds
    return post(f"{url}/v1/models/{MODEL}:explain", json=body, timeout=kw.get("timeout", 120))


def test_same_version_predicts_in_process_no_row_goes_to_the_predictor(world: dict) -> None:
    _, url = world["same"]
    before = len(world["fast"].calls)
    for kinds in (["lime"], None):  # LIME alone, then LIME + Anchor + quality of 5 rows
        r = explain(url, world["rows"], kinds)
        assert r.status_code == 200, r.text
        assert len(r.json()["explanations"]) == 5 and r.json()["model_version"] == "1"
    new = world["fast"].calls[before:]
    # at most the one version check (PROBE_ROWS rows); none of the ~10^5 predicted samples
    assert sum(n for _, n in new) <= PROBE_ROWS and len(new) <= 1
    assert all(mark == EXPLAINER_TRAFFIC for mark, _ in new)


def test_other_version_falls_back_to_http_bounded_and_marked(world: dict) -> None:
    cfg, (_, url), fast = world["cfg"], world["other"], world["fast"]
    explain(url, world["rows"].head(1), ["lime"])  # the version check happens once
    before = len(fast.calls)
    r = explain(url, world["rows"].head(3), ["lime"])
    assert r.status_code == 200, r.text
    new = fast.calls[before:]
    # LIME over HTTP: exactly the neighbourhoods, in as few calls as the predictor's limit allows
    assert sum(n for _, n in new) == 3 * cfg.explain.num_samples
    assert len(new) == -(-3 * cfg.explain.num_samples // cfg.serve.max_instances)
    assert {mark for mark, _ in fast.calls} == {EXPLAINER_TRAFFIC}


def test_http_fallback_gives_the_in_process_explanation(world: dict) -> None:
    row = world["rows"].head(1)
    served = [explain(world[k][1], row).json()["explanations"][0] for k in ("same", "other")]
    local = explain_row_job(world["cfg"], world["model"], None, row, np.random.default_rng(0))
    expected = local.to_dict()
    for got in served:
        pairs = zip(got["lime"]["contributions"], expected["lime"]["contributions"], strict=True)
        for s, loc in pairs:
            assert s["feature"] == loc["feature"]
            assert s["weight"] == pytest.approx(loc["weight"], rel=1e-8)
            assert s["contribution"] == pytest.approx(loc["contribution"], rel=1e-6, abs=1e-12)
        assert got["anchor"]["rule"] == expected["anchor"]["rule"]
    assert served[0]["quality"] == pytest.approx(expected["quality"], rel=1e-12)


def test_too_many_rows_is_a_413_with_the_reason(world: dict) -> None:
    rows = world["rows"].sample(6, replace=True, random_state=0)
    r = explain(world["same"][1], rows, ["lime"])
    assert r.status_code == 413
    assert "6 rows exceed the explainer's limit of 5" in r.json()["error"]
    assert "serve.explain_max_rows" in r.json()["error"]


def test_deadline_and_concurrency_limit(world: dict) -> None:
    """One slow explanation holds the only slot: a second one is refused at once (429,
    Retry-After); the first stops at its deadline (503 with the reason), in bounded time."""
    _, url = world["tight"]
    first: dict[str, Any] = {}

    def slow() -> None:
        t = time.monotonic()
        first["r"] = explain(url, world["rows"].head(1))  # LIME + Anchor, ~0.25 s per call
        first["seconds"] = time.monotonic() - t

    calls = world["slow"].calls
    before, deadline = len(calls), time.monotonic() + 30
    thread = threading.Thread(target=slow)
    thread.start()
    while len(calls) == before:  # once it calls the predictor, the first one holds the slot
        assert thread.is_alive() and time.monotonic() < deadline, "no call to the predictor"
        time.sleep(0.01)
    t = time.monotonic()
    busy = explain(url, world["rows"].head(1), ["lime"])
    assert time.monotonic() - t < 0.5  # refused at once, not queued
    assert busy.status_code == 429, busy.text
    assert 1 <= int(busy.headers["retry-after"]) <= int(np.ceil(DEADLINE))
    assert "serve.explain_max_concurrent" in busy.json()["error"]
    thread.join(30)
    r = first["r"]
    assert r.status_code == 503, r.text
    assert "deadline of 1.5 s" in r.json()["error"]
    assert first["seconds"] < DEADLINE + DELAY + 1.0
    again = explain(url, world["rows"].head(1), ["lime"])  # the slot is free again
    assert again.status_code == 200, again.text


def test_a_small_lime_explanation_on_the_event_loop_is_the_pool_s_answer(world: dict) -> None:
    """The first one-row LIME request builds the engines on the pool; later small ones run on
    the event loop (explainer.py, INLINE_SAMPLES): the same answer, still no predictor call,
    and the weights the engine computes in this process with the same settings and seed."""
    _, url = world["same"]
    cfg, model, row = world["cfg"], world["model"], world["rows"].head(1)
    before = len(world["fast"].calls)
    answers = [explain(url, row, ["lime"]) for _ in range(3)]
    assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
    first, *later = [r.json()["explanations"][0] for r in answers]
    assert all(got == first for got in later)
    assert sum(n for _, n in world["fast"].calls[before:]) <= PROBE_ROWS
    target = explain_target(cfg, model)
    x = model.encode(model.frame(row.values.tolist()))
    (engine,) = lime_explain_batch(target, x, cfg.explain, np.random.default_rng(0))
    got, expected = first["lime"]["contributions"], engine.to_dict()["contributions"]
    assert [c["feature"] for c in got] == [c["feature"] for c in expected]
    for g, e in zip(got, expected, strict=True):
        assert g["weight"] == pytest.approx(e["weight"], rel=1e-8), g["feature"]
        assert g["contribution"] == pytest.approx(e["contribution"], rel=1e-8, abs=1e-12)
