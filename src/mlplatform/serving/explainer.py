"""The explainer: LIME + Anchor + quality for each row, calling the predictor back over HTTP.

    python -m mlplatform.serving explainer --config configs/credit-risk.yaml \\
        --model_name credit-risk --predictor_host 127.0.0.1:8081 --http_port 8084

As in KServe's cluster layout, the explainer holds no model weights it predicts with: every
neighbourhood sample is decoded back to raw feature rows and sent to the predictor in one
``:predict`` call per batch (orjson bodies), marked as explainer traffic
(:data:`~mlplatform.serving.payloads.EXPLAINER_HEADER`) so that no payload log counts it as
user requests. The served model's scaler and background sample
come from the registry, so explanations live in the same space as in training.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
from kserve import Model

from mlplatform.config import PlatformConfig
from mlplatform.core.explain import ExplainTarget, lime_explain_batch
from mlplatform.core.explain.entry import explain_rows
from mlplatform.core.explain.types import check_rows
from mlplatform.core.model import LinearModel
from mlplatform.core.training import explain_target
from mlplatform.errors import ModelNotLoadedError, RequestError, UpstreamError
from mlplatform.serving.inputs import as_json, encode, v1_frame
from mlplatform.serving.payloads import EXPLAINER_HEADER, EXPLAINER_TRAFFIC
from mlplatform.serving.process import base_parser, load_platform_config, serve

FloatArray = np.ndarray
MAX_ROWS = 100


class RemotePredict:
    """``predict_fn(encoded) -> predictions`` that asks the predictor over HTTP (KServe v1)."""

    def __init__(
        self, base_url: str, name: str, model: LinearModel, chunk: int, timeout: float = 60
    ) -> None:
        self.url = f"{base_url.rstrip('/')}/v1/models/{name}:predict"
        self.model, self.chunk = model, chunk
        self.client = httpx.Client(timeout=timeout)

    def __call__(self, encoded: FloatArray) -> FloatArray:
        """One request per ``chunk`` rows (the predictor's per-request limit)."""
        parts = [
            self._post(encoded[i : i + self.chunk]) for i in range(0, len(encoded), self.chunk)
        ]
        return np.concatenate(parts) if parts else np.zeros(0)

    def _post(self, encoded: FloatArray) -> FloatArray:
        rows = self.model.scaler.decode(encoded).values.tolist()
        body = orjson.dumps({"instances": rows}, option=orjson.OPT_SERIALIZE_NUMPY)
        headers = {"content-type": "application/json", EXPLAINER_HEADER: EXPLAINER_TRAFFIC}
        resp = self.client.post(self.url, content=body, headers=headers)
        if resp.status_code != 200:
            raise UpstreamError(f"predictor answered {resp.status_code}: {resp.text[:300]}")
        return np.asarray(orjson.loads(resp.content)["predictions"], dtype=np.float64)


class Explainer(Model):  # type: ignore[misc]
    def __init__(
        self, cfg: PlatformConfig, name: str, predictor_url: str, model: LinearModel | None = None
    ) -> None:
        super().__init__(name)
        self.cfg, self.predictor_url, self.model = cfg, predictor_url, model
        self.version = "local"
        self.ready = model is not None
        self._target: ExplainTarget | None = None

    def target(self) -> ExplainTarget:
        """The served model as the engines see it, built once per loaded model: predictions
        from the predictor over HTTP (one client, keep-alive), the model's background."""
        assert self.model is not None
        if self._target is None:
            chunk = self.cfg.serve.max_instances
            remote = RemotePredict(self.predictor_url, self.name, self.model, chunk)
            self._target = explain_target(self.cfg, self.model, predict_fn=remote)
        return self._target

    def load(self) -> bool:
        from mlplatform.registry.mlflow_registry import CHAMPION, Registry

        reg = Registry(self.cfg.registry)
        self.model = reg.load(self.name, CHAMPION)
        self._target = None
        info = reg.by_alias(self.name, CHAMPION)
        self.version = info.version if info else ""
        self.ready = True
        return True

    async def explain(self, payload: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
        if self.model is None:
            raise ModelNotLoadedError(f"model {self.name!r} is not loaded")
        payload = as_json(payload)
        frame = v1_frame(payload, self.model, self.cfg.entity, MAX_ROWS)
        kinds = payload.get("explainers", ["lime", "anchor"])
        if kinds not in (["lime"], ["lime", "anchor"], ["anchor", "lime"]):
            raise RequestError('"explainers" must be ["lime"] or ["lime", "anchor"]')
        work = self._lime_only if kinds == ["lime"] else self._explain
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(None, work, encode(self.model, frame))
        return {
            "explanations": [r if isinstance(r, dict) else r.to_dict() for r in result],
            "model_name": self.name,
            "model_version": self.version,
        }

    def _lime_only(self, encoded: FloatArray) -> list[Any]:
        """LIME contributions alone: one predictor call for the whole batch."""
        found = lime_explain_batch(
            self.target(), encoded, self.cfg.explain, np.random.default_rng(0)
        )
        return [{"lime": e.to_dict()} for e in found]

    def _explain(self, encoded: FloatArray) -> list[Any]:
        target = self.target()
        X = check_rows(encoded, target.space, self.cfg.explain)
        return list(explain_rows(target, X, self.cfg.explain, np.random.default_rng(0)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(parents=[base_parser()], description=__doc__)
    parser.add_argument("--model_file", default=None, help="Use this model.json, no registry.")
    args, _ = parser.parse_known_args(argv)
    cfg = load_platform_config(args.config)
    host = args.predictor_host or f"{cfg.serve.host}:{cfg.serve.stable_port}"
    url = host if host.startswith("http") else f"http://{host}"
    name = args.model_name or cfg.model_name
    if args.model_file:
        model = Explainer(cfg, name, url, LinearModel.load(Path(args.model_file)))
    else:
        model = Explainer(cfg, name, url)
        model.load()
    serve([model], args.http_port, cfg.serve.max_body_bytes)
