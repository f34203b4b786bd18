"""Traffic between the stable (champion) and canary (challenger) variants.

Two halves of one concept:

* the local router's routing table, :class:`Routing`: an immutable snapshot that admin
  calls replace in one assignment (a request keeps the snapshot it started with);
* the backends the rollout controller moves traffic with, :class:`TrafficBackend`:
  :class:`LocalRouterBackend` (the router's admin API on this machine) and
  :class:`KServeBackend` (``spec.predictor.canaryTrafficPercent`` of an InferenceService,
  statistics from the payload sink).
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, replace
from typing import Any, Protocol

import httpx

from mlplatform.config import as_percent
from mlplatform.core.rollout import VariantStats
from mlplatform.errors import RequestError, TrafficError, UpstreamError
from mlplatform.serving.metrics import stats_from_json
from mlplatform.serving.tokens import ADMIN_TOKEN_ENV, bearer, env_token


# -- the local router's routing table ------------------------------------------------------
@dataclass(eq=False)
class Upstream:
    """One predictor process; ``inflight`` counts requests currently sent to it."""

    url: str
    version: str | None = None
    inflight: int = 0

    def describe(self) -> dict[str, Any]:
        return {"url": self.url, "version": self.version, "inflight": self.inflight}


@dataclass(frozen=True)
class Routing:
    """Who serves: the stable upstream, an optional canary and the canary's share in %."""

    stable: Upstream
    canary: Upstream | None = None
    canary_percent: int = 0

    def draw(self, rng: random.Random) -> str:
        """``"canary"`` with probability canary_percent/100, else ``"stable"``."""
        if self.canary is None or self.canary_percent <= 0:
            return "stable"
        return "canary" if rng.random() * 100 < self.canary_percent else "stable"

    def upstream(self, variant: str) -> Upstream:
        if variant == "canary":
            if self.canary is None:
                raise TrafficError("no canary is attached")
            return self.canary
        return self.stable

    def with_percent(self, percent: int) -> Routing:
        try:
            as_percent(percent)
        except ValueError as exc:
            raise RequestError(str(exc)) from None
        if self.canary is None and percent > 0:
            raise TrafficError("no canary is attached (PUT /admin/canary first)")
        return replace(self, canary_percent=percent)

    def attached(self, url: str, version: str | None, percent: int = 0) -> Routing:
        return Routing(self.stable, Upstream(url, version)).with_percent(percent)

    def promoted(self) -> tuple[Routing, Upstream]:
        """(all traffic to the canary, which becomes stable; the retired stable)."""
        if self.canary is None:
            raise TrafficError("no canary to promote")
        return Routing(self.canary), self.stable

    def rolled_back(self) -> tuple[Routing, Upstream | None]:
        """(all traffic to stable, no canary; the retired canary or None)."""
        return Routing(self.stable), self.canary


async def drain(retired: Upstream | None, seconds: float) -> bool:
    """Wait until no request is in flight to ``retired`` (at most ``seconds``)."""
    deadline = time.monotonic() + seconds
    while retired is not None and retired.inflight > 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    return retired is None or retired.inflight == 0


# -- backends for the rollout controller ---------------------------------------------------
#: The pod label KServe's agent reports as ``ce-endpoint`` (constants.KServiceEndpointLabel,
#: read in pkg/webhook/admission/pod/agent_injector.go, v0.20.0); the chart sets it per
#: predictor revision to :func:`endpoint_label` of the version that revision serves.
ENDPOINT_LABEL = "endpoint"


def endpoint_label(version: str) -> str:
    """``v<version>``: the ``endpoint`` label of a predictor revision serving ``version``."""
    return f"v{version}"


class TrafficBackend(Protocol):
    """What :class:`~mlplatform.serving.rollout.RolloutController` needs from a platform."""

    def set_canary_percent(self, percent: int) -> None: ...

    def stats(self) -> tuple[VariantStats, VariantStats]:
        """(stable, canary) statistics since the canary was attached."""
        ...

    def promote(self) -> None: ...

    def rollback(self) -> None: ...

    def serves(self, version: str) -> bool:
        """Whether the canary is ready and serves registry version ``version``."""
        ...


def _predictor_labels(isvc: dict[str, Any]) -> dict[str, str]:
    """``spec.predictor.labels`` of an InferenceService (those of its latest revision)."""
    labels: dict[str, str] = isvc.get("spec", {}).get("predictor", {}).get("labels") or {}
    return labels


def _stats_pair(doc: dict[str, Any]) -> tuple[VariantStats, VariantStats]:
    empty: dict[str, Any] = {}
    return stats_from_json(doc.get("stable") or empty), stats_from_json(doc.get("canary") or empty)


class LocalRouterBackend:
    """Drives the local canary router through its admin port (``admin_url``, e.g.
    ``http://127.0.0.1:8090``) with the admin token (default: ``MLPLATFORM_ADMIN_TOKEN``)."""

    def __init__(
        self, admin_url: str, client: httpx.Client | None = None, token: str | None = None
    ) -> None:
        self.url = admin_url.rstrip("/")
        self.client = client or httpx.Client(timeout=60.0)
        self.headers = bearer(token or env_token(ADMIN_TOKEN_ENV) or "")

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            resp = self.client.request(method, self.url + path, json=body, headers=self.headers)
        except httpx.HTTPError as exc:
            raise UpstreamError(f"router {self.url} unreachable: {exc}") from None
        if resp.status_code >= 400:
            raise TrafficError(f"router {method} {path}: HTTP {resp.status_code}: {resp.text}")
        return resp.json()

    def set_canary_percent(self, percent: int) -> None:
        self._call("PUT", "/admin/traffic", {"canary_percent": percent})

    def stats(self) -> tuple[VariantStats, VariantStats]:
        return _stats_pair(self._call("GET", "/admin/stats"))

    def promote(self) -> None:
        self._call("POST", "/admin/promote")

    def rollback(self) -> None:
        self._call("POST", "/admin/rollback")

    def serves(self, version: str) -> bool:
        """The attached canary's version is ``version``; one attached without a version is
        taken as the operator said (the router cannot tell)."""
        canary = self._call("GET", "/admin/stats").get("canary")
        if not canary:
            return False
        return canary.get("version") in (None, version)

    def attach(self, url: str, version: str | None, percent: int = 0) -> None:
        self._call(
            "PUT", "/admin/canary", {"url": url, "version": version, "canary_percent": percent}
        )


class KServeBackend:
    """Moves traffic by patching an InferenceService; reads statistics from the payload sink.

    ``api`` is a ``kubernetes.client.CustomObjectsApi`` (or anything with its
    ``get_namespaced_custom_object`` and ``patch_namespaced_custom_object``; the chart's Role
    grants exactly get and patch on this one InferenceService). KServe semantics:
    ``canaryTrafficPercent: p`` sends p% to the latest ready revision; removing the field
    promotes it (100%); 0 sends all traffic back to the previously rolled-out revision.

    Canary and stable are told apart by the ``endpoint`` label of the predictor's pods, which
    KServe's logger agent reports as every event's ``ce-endpoint`` (KServe sets none itself:
    ``default`` otherwise, for both revisions). The chart sets it to ``v<version>``, and the
    spec describes the latest revision, i.e. the canary.
    """

    GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"

    def __init__(
        self,
        namespace: str,
        isvc_name: str,
        api: Any,
        sink_url: str,
        since: float | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        self.namespace, self.name, self.api = namespace, isvc_name, api
        self.sink_url = sink_url.rstrip("/")
        self.since = time.time() if since is None else since
        self.client = client or httpx.Client(timeout=30.0)
        self._canary: str | None = None

    def _get(self) -> dict[str, Any]:
        try:
            obj: dict[str, Any] = self.api.get_namespaced_custom_object(
                self.GROUP, self.VERSION, self.namespace, self.PLURAL, self.name
            )
        except Exception as exc:  # kubernetes ApiException, urllib3 errors
            raise TrafficError(f"reading {self.namespace}/{self.name}: {exc}") from None
        return obj

    def canary_endpoint(self) -> str:
        """The ``endpoint`` label of the latest predictor revision (the canary)."""
        label = _predictor_labels(self._get()).get(ENDPOINT_LABEL)
        if not label:
            raise TrafficError(
                f"{self.namespace}/{self.name}: the predictor has no {ENDPOINT_LABEL!r} label, so "
                "its events cannot be told from the stable revision's (deploy with this chart)"
            )
        return str(label)

    def serves(self, version: str) -> bool:
        """The latest predictor revision serves ``version`` and is ready."""
        obj = self._get()
        labels = _predictor_labels(obj)
        status = (obj.get("status") or {}).get("components", {}).get("predictor", {})
        latest = status.get("latestCreatedRevision")
        return (
            labels.get(ENDPOINT_LABEL) == endpoint_label(version)
            and latest is not None
            and status.get("latestReadyRevision") == latest
        )

    def _patch(self, percent: int | None) -> None:
        body = {"spec": {"predictor": {"canaryTrafficPercent": percent}}}
        try:
            self.api.patch_namespaced_custom_object(
                self.GROUP, self.VERSION, self.namespace, self.PLURAL, self.name, body
            )
        except Exception as exc:  # kubernetes ApiException, urllib3 errors
            raise TrafficError(f"patching {self.namespace}/{self.name}: {exc}") from None

    def set_canary_percent(self, percent: int) -> None:
        self._patch(percent)

    def promote(self) -> None:
        self._patch(None)  # merge patch: null removes the field → latest revision gets 100%

    def rollback(self) -> None:
        self._patch(0)

    def stats(self) -> tuple[VariantStats, VariantStats]:
        if self._canary is None:
            self._canary = self.canary_endpoint()
        params: dict[str, str | float] = {
            "model": self.name,
            "since": self.since,
            "canary": self._canary,
        }
        try:
            resp = self.client.get(f"{self.sink_url}/stats", params=params)
            resp.raise_for_status()
        except httpx.HTTPError as exc:
            raise UpstreamError(f"payload sink {self.sink_url}: {exc}") from None
        return _stats_pair(resp.json())
