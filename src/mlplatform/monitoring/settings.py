"""Settings of the monitor job: the ``monitor`` section of the one config."""

from __future__ import annotations

from mlplatform.config import MonitorConfig, PlatformConfig

__all__ = ["MonitorConfig", "monitor_settings"]


def monitor_settings(cfg: PlatformConfig) -> MonitorConfig:
    """The config's ``monitor`` section."""
    return cfg.monitor
