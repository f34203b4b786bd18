"""Reading a config: YAML file → environment overrides → validated :class:`PlatformConfig`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from mlplatform.config.platform import PlatformConfig, validate_config
from mlplatform.errors import ConfigError

ENV_PREFIX = "MLPLATFORM__"


def apply_env_overrides(raw: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """Set ``raw[section][field]`` from each ``MLPLATFORM__SECTION__FIELD`` variable."""
    out: dict[str, Any] = dict(raw)
    for key, value in sorted(env.items()):
        if not key.startswith(ENV_PREFIX):
            continue
        path = [p.lower() for p in key[len(ENV_PREFIX) :].split("__") if p]
        if not path:
            continue
        node = out
        for part in path[:-1]:
            child = node.get(part)
            node[part] = dict(child) if isinstance(child, dict) else {}
            node = node[part]
        node[path[-1]] = yaml.safe_load(value)
    return out


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> PlatformConfig:
    """Read a YAML config, apply environment overrides and validate it."""
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {p}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from None
    if isinstance(raw, dict):
        raw = apply_env_overrides(raw, os.environ if env is None else env)
    return validate_config(raw, str(p))
