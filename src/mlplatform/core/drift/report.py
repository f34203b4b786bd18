"""What drift detection returns: one :class:`FeatureDrift` per column, a :class:`DriftReport`
with the dataset verdict (Evidently's DataDriftPreset rule: the share of drifted columns reaches
``drift_share``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class FeatureDrift:
    """One column's test: its statistic, p-value (None for PSI) and verdict."""

    name: str
    kind: Literal["numeric", "categorical"]
    method: str
    statistic: float
    p_value: float | None
    drifted: bool
    n_reference: int
    n_current: int


@dataclass(frozen=True)
class DriftReport:
    """Per-feature results and the dataset verdict (share of drifted columns ≥ drift_share)."""

    features: tuple[FeatureDrift, ...]
    drift_share: float

    @property
    def drifted(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features if f.drifted)

    @property
    def share(self) -> float:
        return len(self.drifted) / len(self.features) if self.features else 0.0

    @property
    def dataset_drift(self) -> bool:
        return bool(self.features) and self.share >= self.drift_share

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset_drift": self.dataset_drift,
            "share": self.share,
            "drift_share": self.drift_share,
            "drifted": list(self.drifted),
            "features": [asdict(f) for f in self.features],
        }
