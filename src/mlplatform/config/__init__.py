"""The one configuration object that flows through every stage.

A config is a YAML file (``configs/*.yaml``) validated into :class:`PlatformConfig`,
a frozen, strict pydantic model with one section per stage. Any field can be
overridden from the environment with ``MLPLATFORM__<SECTION>__<FIELD>=value``
(the value is parsed as YAML, so ``0.1``, ``true`` and ``[a, b]`` work; a string field keeps
the text as written, so an all-digit md5 stays a string).

>>> cfg = load_config("configs/house-price.yaml", env={"MLPLATFORM__TRAIN__EPOCHS": "50"})
>>> cfg.train.epochs
50
"""

from mlplatform.config.loading import ENV_PREFIX, apply_env_overrides, load_config
from mlplatform.config.platform import PlatformConfig, format_validation_error, validate_config
from mlplatform.config.sections import (
    DataConfig,
    ExplainConfig,
    FeatureSpec,
    FeatureStoreConfig,
    GateConfig,
    MonitorConfig,
    NormalizeConfig,
    RegistryConfig,
    RolloutConfig,
    ServeConfig,
    TrainConfig,
)
from mlplatform.config.types import PERCENT_RANGE, KSMethod, Percent, as_percent

__all__ = [
    "ENV_PREFIX",
    "PERCENT_RANGE",
    "DataConfig",
    "ExplainConfig",
    "FeatureSpec",
    "FeatureStoreConfig",
    "GateConfig",
    "KSMethod",
    "MonitorConfig",
    "NormalizeConfig",
    "Percent",
    "PlatformConfig",
    "RegistryConfig",
    "RolloutConfig",
    "ServeConfig",
    "TrainConfig",
    "apply_env_overrides",
    "as_percent",
    "format_validation_error",
    "load_config",
    "validate_config",
]
