"""Where the explainer's predictions come from: in-process when the predictor serves the model
the explainer loaded, from the predictor over HTTP (KServe's ``predictor_host``) otherwise.

The explainer holds the model anyway (its scaler and background define the explanations'
space), so when the predictor serves the same version, predicting in-process gives the same
numbers without a single HTTP call. :class:`VersionCheck` decides, by one marked ``:predict``
of :data:`PROBE_ROWS` background rows: in-process iff the predictor reports the explainer's
version (``x-model-version`` header, else the body's ``model_version``) *and* answers the probe
rows as the local model does (which tells two ``--model_file`` models, both "local", apart).
A failed probe, another version or other numbers: over HTTP. The answer holds for
``serve.explain_version_check_seconds`` (0: checked before every request), so a predictor
that moves to another version is followed within that time.

Every call to the predictor, probe included, carries
:data:`~mlplatform.serving.payloads.EXPLAINER_HEADER`: on the cluster the predictor's logger
copies it into the event's metadata and the payload sink drops those events, so explainer
traffic is never logged or counted as user requests.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import numpy as np
import orjson

from mlplatform.core.model import LinearModel
from mlplatform.errors import ExplainDeadlineError, PlatformError, UpstreamError
from mlplatform.serving.explain_limits import Budget
from mlplatform.serving.payloads import EXPLAINER_HEADER, EXPLAINER_TRAFFIC

FloatArray = np.ndarray
PROBE_ROWS = 8
MARKED = {"content-type": "application/json", EXPLAINER_HEADER: EXPLAINER_TRAFFIC}
logger = logging.getLogger("mlplatform.serving")


class RemotePredict:
    """Encoded rows → predictions from the predictor (KServe v1 ``:predict``, orjson bodies),
    one request per ``chunk`` rows (the predictor's per-request limit), every one marked."""

    def __init__(self, base_url: str, name: str, model: LinearModel, chunk: int) -> None:
        self.url = f"{base_url.rstrip('/')}/v1/models/{name}:predict"
        self.model, self.chunk = model, chunk
        self.client = httpx.Client()

    def __call__(self, encoded: FloatArray, timeout: float) -> FloatArray:
        parts = [
            predictions(self.post(encoded[i : i + self.chunk], timeout))
            for i in range(0, len(encoded), self.chunk)
        ]
        return np.concatenate(parts) if parts else np.zeros(0)

    def post(self, encoded: FloatArray, timeout: float) -> httpx.Response:
        """One marked ``:predict`` of the decoded rows; a timeout is the request's deadline."""
        rows = self.model.scaler.decode(encoded).values.tolist()
        body = orjson.dumps({"instances": rows}, option=orjson.OPT_SERIALIZE_NUMPY)
        try:
            resp = self.client.post(self.url, content=body, headers=MARKED, timeout=timeout)
        except httpx.TimeoutException:
            raise ExplainDeadlineError(
                f"the predictor at {self.url} did not answer within the explanation's deadline"
            ) from None
        except httpx.HTTPError as exc:
            raise UpstreamError(f"the predictor at {self.url} is unreachable: {exc}") from None
        if resp.status_code != 200:
            raise UpstreamError(f"predictor answered {resp.status_code}: {resp.text[:300]}")
        return resp


def predictions(resp: httpx.Response) -> FloatArray:
    return np.asarray(orjson.loads(resp.content)["predictions"], dtype=np.float64)


def served_version(resp: httpx.Response) -> str | None:
    """The version a predictor's answer reports: its ``x-model-version`` header, else the body's
    ``model_version``."""
    if version := resp.headers.get("x-model-version"):
        return str(version)
    found = orjson.loads(resp.content).get("model_version")
    return str(found) if found is not None else None


class VersionCheck:
    """Whether the predictor serves the explainer's model (see the module's docstring)."""

    def __init__(self, remote: RemotePredict, version: str, probe: FloatArray, ttl: float) -> None:
        self.remote, self.version, self.probe, self.ttl = remote, version, probe, ttl
        self._answer: tuple[bool, float] = (False, -np.inf)  # (same, holds until), set at once
        self._lock = threading.Lock()

    def same(self, timeout: float) -> bool:
        """The last answer while it holds, else a new probe (one at a time)."""
        with self._lock:
            now = time.monotonic()
            same, until = self._answer
            if now >= until:
                before, same = same, self._probe(timeout)
                if same != before:
                    where = "in-process" if same else "over HTTP"
                    logger.info("explainer: predictions %s from now on", where)
                self._answer = (same, now + self.ttl)
            return same

    def holds_in_process(self) -> bool:
        """Whether the last answer still holds and is "in-process". Never probes and takes no
        lock (a probe holds it for up to its timeout), so the event loop's thread may ask."""
        same, until = self._answer
        return same and time.monotonic() < until

    def _probe(self, timeout: float) -> bool:
        try:
            resp = self.remote.post(self.probe, timeout)
        except PlatformError as exc:
            logger.warning("explainer: version check failed, predicting over HTTP: %s", exc)
            return False
        if served_version(resp) != self.version:
            return False
        local = self.remote.model.predict_encoded(self.probe)
        return bool(np.allclose(predictions(resp), local, rtol=1e-9, atol=1e-12))


class GuardedPredict:
    """The explainer's ``predict_fn``: before each call it checks the running request's
    :class:`Budget` (deadline, client gone), then predicts in-process or over HTTP as that
    request's version check decided. The request is per thread (:meth:`serving`)."""

    def __init__(self, remote: RemotePredict) -> None:
        self.remote = remote
        self._local = threading.local()

    @contextmanager
    def serving(self, budget: Budget) -> Iterator[None]:
        self._local.budget = budget
        try:
            yield
        finally:
            self._local.budget = None

    def __call__(self, encoded: FloatArray) -> FloatArray:
        budget: Budget | None = getattr(self._local, "budget", None)
        assert budget is not None, "predict_fn called outside an explain request"
        left = budget.remaining()
        if budget.in_process:
            return self.remote.model.predict_encoded(encoded)
        try:
            return self.remote(encoded, timeout=left)
        except ExplainDeadlineError:
            budget.remaining()  # the deadline's own reason, now that it has passed
            raise
