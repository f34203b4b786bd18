"""The router's settings: one frozen dataclass, defaults from the platform config."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mlplatform.config import PlatformConfig


@dataclass(frozen=True)
class RouterSettings:
    """Everything the router needs; :meth:`from_config` takes the defaults from ``serve``."""

    model_name: str
    stable_url: str
    payload_db: Path
    canary_url: str | None = None
    explainer_url: str | None = None
    stable_version: str | None = None
    canary_version: str | None = None
    canary_percent: int = 0
    max_body_bytes: int = 8_000_000
    max_instances: int = 10_000
    timeout_seconds: float = 30.0
    retry_canary_on_stable: bool = True
    reservoir_size: int = 2000
    drain_seconds: float = 30.0

    @classmethod
    def from_config(cls, cfg: PlatformConfig, stable_url: str, **overrides: Any) -> RouterSettings:
        s = cfg.serve
        base = cls(cfg.model_name, stable_url, s.payload_db, canary_percent=s.canary_percent)
        base = replace(base, max_body_bytes=s.max_body_bytes, max_instances=s.max_instances)
        return replace(base, **overrides)
