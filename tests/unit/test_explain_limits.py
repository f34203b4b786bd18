"""The explainer's limits and its choice of where to predict, without servers: the gate
(429 + Retry-After), the per-request budget (deadline, client gone), the row limit (413) and
the version check (in-process only for the same version and the same numbers; cached)."""

from __future__ import annotations

import doctest
import time

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

import mlplatform.serving.error_handler as error_handler
import mlplatform.serving.explain_limits as explain_limits
from mlplatform.core.model import LinearModel
from mlplatform.core.scaling import TargetScaler, fit_scaler
from mlplatform.errors import ExplainDeadlineError, ExplainerBusyError, TooManyRowsToExplainError
from mlplatform.serving.explain_limits import Budget, Gate, check_row_count
from mlplatform.serving.explain_predict import GuardedPredict, RemotePredict, VersionCheck
from mlplatform.serving.payloads import EXPLAINER_HEADER, EXPLAINER_TRAFFIC


def test_doctests() -> None:
    assert doctest.testmod(explain_limits).failed == 0
    assert doctest.testmod(error_handler).failed == 0


def test_gate_refuses_beyond_its_limit_until_a_slot_is_given_back() -> None:
    gate = Gate(limit=2, seconds=7.5)
    first, _ = gate.enter(), gate.enter()
    with pytest.raises(ExplainerBusyError, match="explain_max_concurrent") as info:
        gate.enter()
    assert info.value.status == 429 and info.value.retry_after == 8  # ceil(7.5 s left)
    gate.leave(first)
    assert gate.enter().deadline > first.deadline


def test_budget_stops_at_the_deadline_and_when_the_client_is_gone() -> None:
    budget = Budget(time.monotonic() + 60, 60)
    assert 59 < budget.remaining() <= 60
    budget.cancelled = True
    with pytest.raises(ExplainDeadlineError, match="client went away"):
        budget.remaining()
    with pytest.raises(ExplainDeadlineError, match="deadline of 0.5 s"):
        Budget(time.monotonic() - 0.1, 0.5).remaining()


def test_row_limit_is_a_413_and_leaves_other_problems_to_the_parser() -> None:
    check_row_count({"instances": [[1]] * 3}, limit=3)
    check_row_count({"rows": [[1]] * 9}, limit=3)  # not a v1 body: v1_frame says why (400)
    with pytest.raises(TooManyRowsToExplainError, match="4 rows exceed") as info:
        check_row_count({"instances": [[1]] * 4}, limit=3)
    assert info.value.status == 413


def test_kserve_handler_sends_retry_after_with_a_429() -> None:
    app = FastAPI()

    @app.post("/busy")
    async def busy() -> None:
        raise ExplainerBusyError("the explainer is busy", retry_after=3)

    error_handler.install(app)
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.post("/busy")
    assert (r.status_code, r.headers["retry-after"]) == (429, "3")
    assert r.json() == {"error": "the explainer is busy"}


# -- where the explainer predicts ------------------------------------------------------------
def _model() -> LinearModel:
    """ŷ = 1.0·a − 2.0·b + 0.5 on min-max scaled a, b."""
    train = pd.DataFrame(np.random.default_rng(0).random((50, 2)), columns=["a", "b"])
    scaler = fit_scaler(train, ("a", "b"))
    weights = np.array([1.0, -2.0])
    return LinearModel("m", "regression", scaler, TargetScaler(), weights, 0.5, "mse")


class Predictor:
    """A fake predictor behind httpx's MockTransport: a version, a weight offset, a count."""

    def __init__(self, model: LinearModel, version: str, offset: float = 0.0) -> None:
        self.model, self.version, self.offset = model, version, offset
        self.calls: list[tuple[str | None, int]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        rows = orjson.loads(request.content)["instances"]
        self.calls.append((request.headers.get(EXPLAINER_HEADER), len(rows)))
        preds = self.model.predict(self.model.frame(rows)) + self.offset
        body = {"predictions": preds.tolist(), "model_version": self.version}
        return httpx.Response(200, json=body, headers={"x-model-version": self.version})


def _remote(fake: Predictor) -> RemotePredict:
    remote = RemotePredict("http://predictor", "m", fake.model, chunk=100)
    remote.client = httpx.Client(transport=httpx.MockTransport(fake))
    return remote


@pytest.mark.parametrize(
    ("served", "offset", "in_process"),
    [("3", 0.0, True), ("4", 0.0, False), ("3", 1e-3, False)],
    ids=["same version", "other version", "same label, other numbers"],
)
def test_version_check_predicts_in_process_only_for_the_same_model(
    served: str, offset: float, in_process: bool
) -> None:
    model = _model()
    fake = Predictor(model, served, offset)
    probe = model.encode(model.frame(np.random.default_rng(1).random((8, 2)).tolist()))
    check = VersionCheck(_remote(fake), "3", probe, ttl=60)
    assert check.same(timeout=5) is in_process
    assert check.same(timeout=5) is in_process
    assert fake.calls == [(EXPLAINER_TRAFFIC, 8)]  # one probe, marked, then the cached answer


def test_a_failed_check_means_http_and_is_retried_after_its_ttl() -> None:
    model = _model()
    remote = RemotePredict("http://127.0.0.1:9", "m", model, chunk=100)  # nothing listens
    check = VersionCheck(remote, "3", model.encode(model.frame([[0.5, 0.5]])), ttl=0)
    assert check.same(timeout=1) is False
    fake = Predictor(model, "3")
    remote.client = httpx.Client(transport=httpx.MockTransport(fake))
    assert check.same(timeout=1) is True  # ttl 0: checked again on the next request


def test_guarded_predict_uses_the_requests_choice_and_chunks_over_http() -> None:
    model = _model()
    fake = Predictor(model, "3")
    guarded = GuardedPredict(_remote(fake))
    Z = model.encode(model.frame(np.random.default_rng(2).random((250, 2)).tolist()))
    with guarded.serving(Budget(time.monotonic() + 60, 60, in_process=True)):
        local = guarded(Z)
    assert fake.calls == []
    with guarded.serving(Budget(time.monotonic() + 60, 60, in_process=False)):
        remote = guarded(Z)
    assert [n for _, n in fake.calls] == [100, 100, 50]
    np.testing.assert_allclose(remote, local, rtol=1e-12)
    late = Budget(time.monotonic() - 1, 2, in_process=True)
    with guarded.serving(late), pytest.raises(ExplainDeadlineError, match="deadline of 2 s"):
        guarded(Z)
