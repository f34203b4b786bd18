"""The real KServe model servers on loopback: predictor (v1 + Open Inference Protocol v2, checked
with tritonclient), Feast transformer, HTTP-backed explainer, and the `mlplatform serve` stack."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest
from tests.support.servers import free_port, post, setup_model, start, write_config

from mlplatform.stages.explain import explain_row_job

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def credit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    tmp = tmp_path_factory.mktemp("serve")
    cfg, path, model = setup_model(tmp, "credit-risk")
    ports = {k: free_port() for k in ("pred", "tr", "ex")}
    common = ["--config", str(path), "--model_name", "credit-risk"]
    procs = [start("predictor", common, ports["pred"], tmp / "pred.log")]
    host = ["--predictor_host", f"127.0.0.1:{ports['pred']}"]
    procs.append(start("transformer", common + host, ports["tr"], tmp / "tr.log"))
    procs.append(start("explainer", common + host, ports["ex"], tmp / "ex.log"))
    data = pd.read_parquet(tmp / "data/credit-risk.parquet")
    yield {"cfg": cfg, "cfg_path": path, "model": model, "ports": ports, "data": data, "tmp": tmp}
    for p in procs:
        p.terminate()
        p.wait(10)


def url(ports: dict[str, int], key: str, path: str) -> str:
    return f"http://127.0.0.1:{ports[key]}{path}"


def test_v1_predict_matches_the_model(credit: dict) -> None:
    rows = credit["data"][list(credit["model"].feature_names)].head(20)
    r = post(
        url(credit["ports"], "pred", "/v1/models/credit-risk:predict"),
        json={"instances": rows.values.tolist()},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    np.testing.assert_allclose(body["predictions"], credit["model"].predict(rows), rtol=1e-12)
    assert body["model_version"] == "1"


@pytest.fixture(scope="module")
def router_url(credit: dict) -> Iterator[str]:
    """The canary router (what clients call) in front of the real predictor."""
    from tests.support.router import running

    from mlplatform.serving.router import RouterSettings, create_app

    cfg = credit["cfg"].with_overrides(
        serve={"payload_store": f"sqlite:///{credit['tmp']}/router-payloads.db"}
    )
    stable = f"http://127.0.0.1:{credit['ports']['pred']}"
    settings = RouterSettings(stable, feedback_token="f", admin_token="a")
    with running(create_app(cfg, settings)) as url:
        yield url


@pytest.mark.parametrize("via", ["predictor", "router"])
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_open_inference_protocol_with_tritonclient(
    credit: dict, router_url: str, binary: bool, via: str
) -> None:
    """tritonclient's two modes, against the predictor and through the router unchanged: the
    binary tensor extension, and tensors in a JSON body sent without a content type."""
    import tritonclient.http as triton

    where = f"127.0.0.1:{credit['ports']['pred']}" if via == "predictor" else router_url[7:]
    client = triton.InferenceServerClient(url=where)
    assert client.is_server_ready() and client.is_model_ready("credit-risk")
    meta = client.get_model_metadata("credit-risk")
    assert [i["name"] for i in meta["inputs"]] == list(credit["model"].feature_names)
    rows = credit["data"][list(credit["model"].feature_names)].head(7).to_numpy(np.float64)
    tensor = triton.InferInput("input-0", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows, binary_data=binary)  # OIP binary tensor extension or not
    output = triton.InferRequestedOutput("predictions", binary_data=binary)
    result = client.infer("credit-risk", [tensor], outputs=[output])
    expected = credit["model"].predict(credit["data"].head(7))
    np.testing.assert_allclose(result.as_numpy("predictions"), expected, rtol=1e-12)


def test_plain_curl_bodies_through_the_router(credit: dict, router_url: str) -> None:
    """``curl -d`` sends application/x-www-form-urlencoded: v1 and v2 bodies still work."""
    rows = credit["data"][list(credit["model"].feature_names)].head(3)
    form = {"content-type": "application/x-www-form-urlencoded"}
    v1 = httpx.post(
        f"{router_url}/v1/models/credit-risk:predict",
        content=orjson.dumps({"instances": rows.values.tolist()}),
        headers=form,
    )
    assert v1.status_code == 200, v1.text
    v2_body = {
        "inputs": [
            {"name": "x", "shape": list(rows.shape), "datatype": "FP64",
             "data": rows.to_numpy(np.float64).ravel().tolist()}
        ]
    }  # fmt: skip
    v2 = httpx.post(
        f"{router_url}/v2/models/credit-risk/infer", content=orjson.dumps(v2_body), headers=form
    )
    assert v2.status_code == 200, v2.text
    expected = credit["model"].predict(credit["data"].head(3))
    np.testing.assert_allclose(v1.json()["predictions"], expected, rtol=1e-12)
    np.testing.assert_allclose(v2.json()["outputs"][0]["data"], expected, rtol=1e-12)


BAD = [
    ({"instances": [[40, 2e7, 0.2]]}, "must list 5 features"),
    ({"instances": [[40, "rich", 0.2, 0, 5]]}, "'income_vnd' must be a number"),
    ({"instances": []}, "no instances"),
    ({"rows": [[1, 2, 3, 4, 5]]}, '"instances"'),
    ({"instances": [{"applicant_id": 10**9}]}, "unknown applicant_id [1000000000]"),
]


@pytest.mark.parametrize(("body", "reason"), BAD)
def test_bad_input_is_a_400_with_the_reason_and_the_server_keeps_serving(
    credit: dict, body: dict, reason: str
) -> None:
    r = post(url(credit["ports"], "pred", "/v1/models/credit-risk:predict"), json=body)
    assert r.status_code == 400 and reason in r.json()["error"]
    ok = post(
        url(credit["ports"], "pred", "/v1/models/credit-risk:predict"),
        json={"instances": [[40, 2e7, 0.2, 0, 5]]},
    )
    assert ok.status_code == 200


@pytest.mark.parametrize("server", ["pred", "tr", "ex"])
def test_every_server_caps_bodies_and_instances_with_413(credit: dict, server: str) -> None:
    """serve.max_body_bytes (1 MB in this config) and the row limit (serve.max_instances,
    10,000; the explainer's serve.explain_max_rows) on the predictor, transformer, explainer:
    a declared or a streamed (chunked) body over the cap and too many rows are 413 with the
    reason; the server keeps serving."""
    verb = "explain" if server == "ex" else "predict"
    endpoint = url(credit["ports"], server, f"/v1/models/credit-risk:{verb}")
    row = [40, 2e7, 0.2, 0, 5]
    limit = credit["cfg"].serve.max_body_bytes
    big = b'{"instances": [' + b"[40, 20000000.0, 0.2, 0, 5]," * (limit // 27) + b"[1]]}"
    assert len(big) > limit
    declared = post(endpoint, content=big, headers={"content-type": "application/json"})
    assert declared.status_code == 413, declared.text
    assert f"exceeds serve.max_body_bytes={limit}" in declared.json()["error"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server counts as it reads
        for i in range(0, len(big), 1 << 20):
            yield big[i : i + (1 << 20)]

    streamed = post(endpoint, content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413, streamed.text
    assert "serve.max_body_bytes" in streamed.json()["error"]
    many = post(endpoint, json={"instances": [row] * 10_001})
    setting = "explain_max_rows" if server == "ex" else "max_instances=10000"
    assert many.status_code == 413 and setting in many.json()["error"]
    ok = post(endpoint, json={"instances": [row]})
    assert ok.status_code == 200, ok.text


def test_malformed_json_nan_and_unknown_model(credit: dict) -> None:
    p = credit["ports"]
    headers = {"content-type": "application/json"}
    bad = post(
        url(p, "pred", "/v1/models/credit-risk:predict"),
        content=b'{"instances": [[',
        headers=headers,
    )
    assert bad.status_code == 400 and "error" in bad.json()
    nan = post(
        url(p, "pred", "/v1/models/credit-risk:predict"),
        content=b'{"instances": [[40, NaN, 0.2, 0, 5]]}',
        headers=headers,
    )
    assert nan.status_code == 400
    missing = post(url(p, "pred", "/v1/models/nope:predict"), json={"instances": [[1]]})
    assert missing.status_code == 404 and "nope" in missing.json()["error"]


@pytest.mark.parametrize("value", [None, float("nan"), float("inf")], ids=["null", "nan", "inf"])
def test_missing_and_non_finite_values_are_400_on_v1_and_v2(credit: dict, value: object) -> None:
    """Valid JSON ``null``, and NaN/inf where the protocol can carry them (v2's binary tensor
    extension), reach the model's check: a 400 naming the problem, never a 500."""
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException

    p = credit["ports"]
    if value is None:
        v1 = post(url(p, "pred", "/v1/models/credit-risk:predict"),
                  json={"instances": [[40, None, 0.2, 0, 5]]})  # fmt: skip
        assert v1.status_code == 400, v1.text
        v2_body = {"inputs": [{"name": "x", "shape": [1, 5], "datatype": "FP64",
                               "data": [40, None, 0.2, 0, 5]}]}  # fmt: skip
        v2 = post(url(p, "pred", "/v2/models/credit-risk/infer"), json=v2_body)
        assert v2.status_code == 400, v2.text
        return
    client = triton.InferenceServerClient(url=f"127.0.0.1:{p['pred']}")
    rows = np.array([[40, 2e7, 0.2, 0, 5]], dtype=np.float64)
    rows[0, 1] = value
    tensor = triton.InferInput("input-0", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows, binary_data=True)
    with pytest.raises(InferenceServerException, match=r"\[400\]"):
        client.infer("credit-risk", [tensor])


def test_transformer_resolves_entity_ids_from_the_online_store(credit: dict) -> None:
    data = credit["data"]
    ids = [int(i) for i in data["applicant_id"].head(5)]
    r = post(
        url(credit["ports"], "tr", "/v1/models/credit-risk:predict"),
        json={"instances": [{"applicant_id": i} for i in ids]},
    )
    assert r.status_code == 200, r.text
    expected = credit["model"].predict(data[data["applicant_id"].isin(ids)])
    np.testing.assert_allclose(r.json()["predictions"], expected, rtol=1e-12)
    unknown = post(
        url(credit["ports"], "tr", "/v1/models/credit-risk:predict"),
        json={"instances": [{"applicant_id": 424242}]},
    )
    assert unknown.status_code == 400 and "424242" in unknown.json()["error"]


def test_explainer_calls_the_predictor_and_matches_in_process(credit: dict) -> None:
    cfg, model, data = credit["cfg"], credit["model"], credit["data"]
    row = data[list(model.feature_names)].head(1)
    r = post(
        url(credit["ports"], "ex", "/v1/models/credit-risk:explain"),
        json={"instances": row.values.tolist()},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    served = r.json()["explanations"][0]
    local = explain_row_job(cfg, model, None, row, np.random.default_rng(0)).to_dict()
    assert served["lime"]["model_prediction"] == pytest.approx(local["lime"]["model_prediction"])
    # The same numbers up to the decode → JSON → encode round trip of the samples.
    pairs = zip(served["lime"]["contributions"], local["lime"]["contributions"], strict=True)
    for s, loc in pairs:
        assert s["feature"] == loc["feature"]
        assert s["weight"] == pytest.approx(loc["weight"], rel=1e-8)
        assert s["contribution"] == pytest.approx(loc["contribution"], rel=1e-6, abs=1e-12)
        assert s["direction"] == loc["direction"] and "compared with" in s["text"]
    assert served["lime"]["reference"]["name"] == "the average applicant"
    assert served["anchor"]["rule"] == local["anchor"]["rule"]
    assert {"lime_fidelity_r2", "anchor_precision"} <= set(served["quality"])
    bad = post(
        url(credit["ports"], "ex", "/v1/models/credit-risk:explain"), json={"instances": [[1, 2]]}
    )
    assert bad.status_code == 400 and "must list 5 features" in bad.json()["error"]


def test_serve_command_starts_everything_and_ctrl_c_leaves_no_orphans(credit: dict) -> None:
    cfg = credit["cfg"].with_overrides(
        serve={
            "router_port": free_port(),
            "router_admin_port": free_port(),
            "stable_port": free_port(),
            "canary_port": free_port(),
            "transformer_port": free_port(),
            "explainer_port": free_port(),
        }
    )
    path = write_config(cfg, credit["tmp"] / "serve.yaml")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlplatform.cli", "serve", "--config", str(path), "--no-canary"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=credit["tmp"],
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        printed = _read_until(proc, "predict: POST", timeout=150)
        for name in ("stable", "router", "transformer", "explainer"):
            assert name in printed
        router = f"http://127.0.0.1:{cfg.serve.router_port}"
        r = post(
            f"{router}/v1/models/credit-risk:predict", json={"instances": [[40, 2e7, 0.2, 0, 5]]}
        )
        assert r.status_code == 200, r.text
        plain = httpx.post(  # `curl -d` sends no JSON content type
            f"{router}/v1/models/credit-risk:predict",
            content=b'{"instances": [[40, 20000000, 0.2, 0, 5]]}',
            headers={"content-type": "application/x-www-form-urlencoded"},
            timeout=60,
        )
        assert plain.status_code == 200, plain.text
        children = _children(proc.pid)
        assert len(children) == 4  # stable, router, transformer, explainer
    finally:
        proc.send_signal(2)  # Ctrl-C
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out.decode()[-2000:]
    assert "stopped" in out.decode()
    deadline = time.monotonic() + 10  # poll: a child still exiting is not an orphan yet
    while (alive := [pid for pid in children if _alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive, "orphan processes left running"


def _read_until(proc: subprocess.Popen[bytes], marker: str, timeout: float) -> str:
    """Lines the process prints until ``marker`` (it prints it once every server is ready)."""
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    text, deadline = "", time.monotonic() + timeout
    while marker not in text:
        assert proc.poll() is None, text[-2000:]
        assert time.monotonic() < deadline, f"no {marker!r} after {timeout} s: {text[-2000:]}"
        chunk = proc.stdout.read()
        if chunk:
            text += chunk.decode(errors="replace")
        else:
            time.sleep(0.2)
    os.set_blocking(proc.stdout.fileno(), True)
    return text


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(x) for x in out.stdout.split()]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_a_pinned_predictor_still_starts_after_its_alias_is_gone(credit: dict) -> None:
    """Promotion deletes ``challenger``: a revision started with ``--alias challenger`` cannot
    start another pod afterwards, one pinned with ``--model_version`` serves the same weights."""
    import dataclasses

    from mlplatform.registry.mlflow_registry import CHALLENGER, Registry

    tmp, cfg, v1 = credit["tmp"], credit["cfg"], credit["model"]
    v2 = dataclasses.replace(v1, bias=v1.bias + 0.75)  # the challenger: other weights
    reg = Registry(cfg.registry)
    version = reg.log_and_register(
        v2.save(tmp / "v2" / "model.json"), {}, {}, [], {"data_md5": "t"}
    )
    reg.set_alias(cfg.model_name, CHALLENGER, version.version, "test")
    reg.delete_alias(cfg.model_name, CHALLENGER)  # what promotion does
    common = ["--config", str(credit["cfg_path"]), "--model_name", "credit-risk"]
    port = free_port()
    proc = start("predictor", [*common, "--model_version", version.version], port, tmp / "v2.log")
    try:
        rows = credit["data"][list(v1.feature_names)].head(5)
        body = post(
            f"http://127.0.0.1:{port}/v1/models/credit-risk:predict",
            json={"instances": rows.values.tolist()},
        ).json()
        assert body["model_version"] == version.version != "1"
        np.testing.assert_allclose(body["predictions"], v2.predict(rows), rtol=1e-12)
        assert not np.allclose(body["predictions"], v1.predict(rows))
    finally:
        proc.terminate()
        proc.wait(10)
    with pytest.raises(AssertionError, match="no version with alias 'challenger'"):
        start("predictor", [*common, "--alias", "challenger"], free_port(), tmp / "alias.log")


def test_explainer_marks_every_call_to_the_predictor_as_its_own_traffic(credit: dict) -> None:
    """On the cluster the predictor's logger forwards this header and the sink drops those
    events: every call must carry it, or explanations pollute the payload log. (Here the
    explainer serves the predictor's version, so it predicts in-process and calls only for its
    version check; tests/integration/test_explainer_limits.py covers the HTTP fallback.)"""
    import http.server
    import threading

    from mlplatform.serving.payloads import EXPLAINER_HEADER, EXPLAINER_TRAFFIC

    seen: list[str | None] = []
    predictor = url(credit["ports"], "pred", "")

    class Recorder(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:  # forward to the real predictor, note the header
            seen.append(self.headers.get(EXPLAINER_HEADER))
            body = self.rfile.read(int(self.headers["content-length"]))
            r = httpx.post(predictor + self.path, content=body, timeout=60)
            self.send_response(r.status_code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(r.content)))
            self.end_headers()
            self.wfile.write(r.content)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    common = ["--config", str(credit["cfg_path"]), "--model_name", "credit-risk"]
    host = ["--predictor_host", f"127.0.0.1:{server.server_address[1]}"]
    port = free_port()
    proc = start("explainer", common + host, port, credit["tmp"] / "ex-marked.log")
    try:
        row = credit["data"][list(credit["model"].feature_names)].head(2)
        r = post(
            f"http://127.0.0.1:{port}/v1/models/credit-risk:explain",
            json={"instances": row.values.tolist()},
            timeout=120,
        )
        assert r.status_code == 200, r.text
    finally:
        proc.terminate()
        proc.wait(10)
        server.shutdown()
    assert len(seen) >= 1 and set(seen) == {EXPLAINER_TRAFFIC}
