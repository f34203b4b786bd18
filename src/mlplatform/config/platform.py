"""The whole config of one model (:class:`PlatformConfig`) and its validation."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

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
from mlplatform.config.types import _Strict
from mlplatform.errors import ConfigError


class PlatformConfig(_Strict):
    """Everything one model needs, from data to explanations."""

    model_name: str = Field(pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$", max_length=45)
    task: Literal["regression", "classification"]
    entity: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Entity id column.")
    timestamp: str = Field(default="event_timestamp", description="Event time column.")
    target: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Label column.")
    features: tuple[FeatureSpec, ...] = Field(min_length=1)
    artifacts_dir: Path = Field(default=Path("artifacts"), description="Outputs root.")
    data: DataConfig
    normalize: NormalizeConfig = NormalizeConfig()
    train: TrainConfig
    explain: ExplainConfig = ExplainConfig()
    gate: GateConfig = GateConfig()
    registry: RegistryConfig = RegistryConfig()
    feature_store: FeatureStoreConfig = FeatureStoreConfig()
    serve: ServeConfig = ServeConfig()
    rollout: RolloutConfig = RolloutConfig()
    monitor: MonitorConfig = MonitorConfig()

    @model_validator(mode="after")
    def _check(self) -> PlatformConfig:
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            raise ValueError(f"feature names repeat: {names}")
        if self.target in names or self.entity in names:
            raise ValueError("target and entity must not be listed as features")
        if (self.task == "classification") != (self.train.loss == "logistic"):
            raise ValueError(
                f"task {self.task!r} does not match loss {self.train.loss!r}: "
                "classification uses 'logistic', regression uses mse/mae/huber"
            )
        return self

    @property
    def numeric_features(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features if f.kind == "numeric")

    @property
    def categorical_features(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features if f.kind == "categorical")

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @property
    def model_dir(self) -> Path:
        return self.artifacts_dir / self.model_name

    @property
    def data_path(self) -> Path:
        """The model's raw data file, ``<data.data_dir>/<model_name>.parquet`` (DVC-tracked)."""
        return self.data.data_dir / f"{self.model_name}.parquet"

    def to_json(self) -> str:
        """Serialize for a KFP parameter or an environment variable."""
        return self.model_dump_json(by_alias=True)

    @classmethod
    def from_json(cls, text: str) -> PlatformConfig:
        """Inverse of :meth:`to_json`, with the same clear errors as :func:`load_config`."""
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, "config JSON")) from None

    def with_overrides(self, **sections: Mapping[str, Any]) -> PlatformConfig:
        """A copy with some section fields replaced, validated again.

        >>> cfg2 = cfg.with_overrides(train={"epochs": 10})
        """
        raw = self.model_dump(mode="json", by_alias=True)
        for section, values in sections.items():
            raw[section] = {**raw[section], **values} if isinstance(raw[section], dict) else values
        return validate_config(raw, "overrides")


def format_validation_error(
    exc: ValidationError, source: str | Callable[[tuple[int | str, ...]], str]
) -> str:
    """One line per problem: ``source: section.field: message (got value)``; a single problem
    stays on the header's line (what the CLI prints). ``source`` may name it per location."""
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        origin = source if isinstance(source, str) else source(err["loc"])
        shown = repr(err["input"])
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        got = f" (got {shown})" if err["type"] != "missing" and err["loc"] else ""
        lines.append(f"{origin}: {where}: {err['msg']}{got}")
    if len(lines) == 1:
        return f"invalid configuration: {lines[0]}"
    return "invalid configuration:\n  " + "\n  ".join(lines)


def validate_config(raw: Any, source: str) -> PlatformConfig:
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}: expected a mapping at the top level, got "
            + ("an empty document" if raw is None else type(raw).__name__)
        )
    try:
        return PlatformConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None
