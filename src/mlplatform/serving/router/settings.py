"""The router's per-process wiring: the upstreams it routes to and the versions they serve.

Everything else (model name, initial canary share, limits, timeouts, retry, statistics,
drain, payload log) is the config: the router takes the ``PlatformConfig`` itself.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RouterSettings:
    """Where one router process sends requests: its ``--*-url`` and ``--*-version`` flags."""

    stable_url: str
    canary_url: str | None = None
    explainer_url: str | None = None
    stable_version: str | None = None
    canary_version: str | None = None
