"""The explainer: LIME + Anchor + quality for each row, with bounded cost per request.

    python -m mlplatform.serving explainer --config configs/credit-risk.yaml \\
        --model_name credit-risk --predictor_host 127.0.0.1:8081 --http_port 8084

It loads the served model from the registry (its scaler and background sample, so
explanations live in the same space as in training) and predicts the neighbourhood samples
in-process while the predictor at ``predictor_host`` serves that same version, over HTTP as
KServe's explainers do otherwise (:mod:`.explain_predict`; every call marked as explainer
traffic, never logged as user requests). Each request is bounded
(:mod:`.explain_limits`): ``serve.explain_max_rows`` rows (413 above),
``serve.explain_max_concurrent`` explanations at once per process (429 with ``Retry-After``
above) and ``serve.explain_deadline_seconds`` of work (then stopped: 503).

An explanation runs on a pool thread, so that the server answers other requests meanwhile;
a small one (LIME alone on at most :data:`INLINE_SAMPLES` samples, predicted in-process) runs
on the event loop's thread instead, within the same limits: for a one-row LIME the hop to a
thread and back costs a fifth of the explanation.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from kserve import Model

from mlplatform.config import ExplainConfig, PlatformConfig
from mlplatform.core.explain import ExplainTarget, lime_explain_batch
from mlplatform.core.explain.entry import explain_rows
from mlplatform.core.explain.types import check_rows
from mlplatform.core.model import LinearModel
from mlplatform.core.training import explain_target
from mlplatform.errors import ModelNotLoadedError, RequestError
from mlplatform.serving.explain_limits import Budget, Gate, check_row_count
from mlplatform.serving.explain_predict import (
    PROBE_ROWS,
    GuardedPredict,
    RemotePredict,
    VersionCheck,
)
from mlplatform.serving.inputs import as_json, encode, v1_frame
from mlplatform.serving.process import base_parser, load_platform_config, serve

FloatArray = np.ndarray
Work = Callable[[ExplainTarget, FloatArray], list[Any]]
PROBE_TIMEOUT = 5.0
INLINE_SAMPLES = 10_000  # rows × explain.num_samples: LIME of 5 rows at 2000 samples, ~2 ms


@dataclass(frozen=True)
class Engines:
    """What the explanations of one loaded model share: the target the engines see, its
    guarded ``predict_fn`` and the check that decides where it predicts."""

    target: ExplainTarget
    guarded: GuardedPredict
    check: VersionCheck


class Explainer(Model):  # type: ignore[misc]
    def __init__(
        self, cfg: PlatformConfig, name: str, predictor_url: str, model: LinearModel | None = None
    ) -> None:
        super().__init__(name)
        self.cfg, self.predictor_url, self.model = cfg, predictor_url, model
        self.version = "local"
        self.ready = model is not None
        self.gate = Gate(cfg.serve.explain_max_concurrent, cfg.serve.explain_deadline_seconds)
        self._pool = ThreadPoolExecutor(cfg.serve.explain_max_concurrent, "explain")
        self._engines: Engines | None = None

    def engines(self) -> Engines:
        """Built once per loaded model (one HTTP client, keep-alive; the target's caches)."""
        model = self._model()
        if self._engines is None:
            serve = self.cfg.serve
            remote = RemotePredict(self.predictor_url, self.name, model, serve.max_instances)
            guarded = GuardedPredict(remote)
            target = explain_target(self.cfg, model, predict_fn=guarded)
            probe = target.background[:PROBE_ROWS]
            check = VersionCheck(remote, self.version, probe, serve.explain_version_check_seconds)
            self._engines = Engines(target, guarded, check)
        return self._engines

    def load(self) -> bool:
        from mlplatform.registry.mlflow_registry import CHAMPION, Registry

        reg = Registry(self.cfg.registry)
        self.model = reg.load(self.name, CHAMPION)
        self._engines = None
        info = reg.by_alias(self.name, CHAMPION)
        self.version = info.version if info else ""
        self.ready = True
        return True

    def _model(self) -> LinearModel:
        if self.model is None:
            raise ModelNotLoadedError(f"model {self.name!r} is not loaded")
        return self.model

    async def explain(self, payload: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
        model, limit = self._model(), self.cfg.serve.explain_max_rows
        payload = as_json(payload)
        check_row_count(payload, limit)
        frame = v1_frame(payload, model, self.cfg.entity, limit)
        kinds = payload.get("explainers", ["lime", "anchor"])
        work, encoded = self._work(kinds), encode(model, frame)
        small = kinds == ["lime"] and len(encoded) * self.cfg.explain.num_samples <= INLINE_SAMPLES
        result = await self._run(work, encoded, small)
        return {
            "explanations": [r if isinstance(r, dict) else r.to_dict() for r in result],
            "model_name": self.name,
            "model_version": self.version,
        }

    def _work(self, kinds: Any) -> Work:
        if kinds not in (["lime"], ["lime", "anchor"], ["anchor", "lime"]):
            raise RequestError('"explainers" must be ["lime"] or ["lime", "anchor"]')
        return partial(_lime_only if kinds == ["lime"] else _explain, self.cfg.explain)

    async def _run(self, work: Work, encoded: FloatArray, small: bool) -> list[Any]:
        """``work`` on a pool thread within one slot of the gate (429 when none is free). The
        slot is given back when the thread is done, not when this coroutine is: a cancelled
        request marks its budget so the work stops at its next prediction. ``small`` work
        predicted in-process (the last version check still holds) runs here instead, at once."""
        budget = self.gate.enter()
        engines = self._engines
        if small and engines is not None and engines.check.holds_in_process():
            budget.in_process = True
            try:
                return _compute(engines, budget, work, encoded)
            finally:
                self.gate.leave(budget)
        future = self._pool.submit(self._within, budget, work, encoded)
        future.add_done_callback(lambda _: self.gate.leave(budget))
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            budget.cancelled = True
            raise

    def _within(self, budget: Budget, work: Work, encoded: FloatArray) -> list[Any]:
        engines = self.engines()
        budget.in_process = engines.check.same(min(budget.remaining(), PROBE_TIMEOUT))
        return _compute(engines, budget, work, encoded)


def _compute(engines: Engines, budget: Budget, work: Work, encoded: FloatArray) -> list[Any]:
    """``work`` on this thread, its predictions guarded by ``budget``."""
    with engines.guarded.serving(budget):
        return work(engines.target, encoded)


def _lime_only(cfg: ExplainConfig, target: ExplainTarget, encoded: FloatArray) -> list[Any]:
    """LIME contributions alone: one model call for the whole batch."""
    found = lime_explain_batch(target, encoded, cfg, np.random.default_rng(0))
    return [{"lime": e.to_dict()} for e in found]


def _explain(cfg: ExplainConfig, target: ExplainTarget, encoded: FloatArray) -> list[Any]:
    """LIME, Anchor and their quality for each row."""
    X = check_rows(encoded, target.space, cfg)
    return list(explain_rows(target, X, cfg, np.random.default_rng(0)))


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
