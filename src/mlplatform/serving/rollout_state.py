"""Where a canary rollout stands, kept in the registry so a restarted controller resumes it.

The controller writes a :class:`RolloutState` as the tag ``rollout.state`` of the challenger's
model version each time it sets a step's traffic split, when it is asked to stop (SIGTERM),
and when it finishes (with the outcome). A controller that starts on a challenger whose tag
has no outcome resumes at that step: it sets the same split again (idempotent) and counts the
step's time from the recorded start, since traffic kept flowing at that split while it was
down. The on-call engineer reads the same tag in MLflow (or ``mlplatform lineage``).

>>> s = RolloutState("7", step=1, step_started_at=100.0, started_at=40.0)
>>> RolloutState.from_tags({STATE_TAG: s.to_json()}) == s
True
>>> RolloutState.from_tags({STATE_TAG: "not json"}) is None
True
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from math import ceil
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from mlplatform.config import RolloutConfig
    from mlplatform.core.rollout import Decision

STATE_TAG = "rollout.state"


class RolloutStopped(Exception):  # noqa: N818 (a stop on request, not an error)
    """The controller was asked to stop (SIGTERM) mid-rollout; traffic stays at the current
    step's split and the state is recorded for the next controller."""


@dataclass(frozen=True)
class RolloutResult:
    """How a rollout ended, with every decision on the way."""

    outcome: Literal["promoted", "rolled_back"]
    reason: str
    decisions: tuple[tuple[int, Decision], ...]  # (step index, decision), in order
    version: str | None = None  # the challenger's registry version, when known


@dataclass(frozen=True)
class RolloutState:
    """One rollout's position: the step (index into ``rollout.steps``) and its wall-clock
    start (Unix seconds), the rollout's start, the last decision's reason, and the outcome
    once finished (``promoted`` or ``rolled_back``)."""

    version: str
    step: int
    step_started_at: float
    started_at: float
    last_decision: str = ""
    outcome: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> RolloutState | None:
        """The state in a version's tags; None when there is none or it cannot be read (a
        controller then starts the rollout from its first step)."""
        try:
            doc: Any = json.loads(tags[STATE_TAG])
            return cls(**doc) if isinstance(doc, dict) else None
        except (KeyError, TypeError, ValueError):
            return None

    def finished(self, outcome: str, reason: str) -> RolloutState:
        return replace(self, outcome=outcome, last_decision=reason)


class VersionTags(Protocol):
    """What the state needs of MLflow's client (``Registry.client``)."""

    def set_model_version_tag(self, name: str, version: str, key: str, value: Any) -> None: ...


def save_state(client: VersionTags, model: str, state: RolloutState) -> None:
    """Write ``state`` as the ``rollout.state`` tag of ``model`` version ``state.version``."""
    client.set_model_version_tag(model, state.version, STATE_TAG, state.to_json())


def resume_point(tags: dict[str, str], version: str, steps: int) -> RolloutState | None:
    """The unfinished state of ``version`` to resume from, if its tags hold one that fits the
    configured number of steps."""
    state = RolloutState.from_tags(tags)
    if state is None or state.outcome is not None or state.version != version:
        return None
    return state if 0 <= state.step < steps else None


def step_banner(cfg: RolloutConfig, index: int, traffic_hint: str) -> str:
    """The line a step starts with: its split and what it waits for (and how to provide it).

    >>> from mlplatform.config import RolloutConfig
    >>> step_banner(RolloutConfig(), 0, "send traffic")  # doctest: +NORMALIZE_WHITESPACE
    'rollout: canary at 10% (step 1/3): waiting for 200 canary requests (about 2000 in all)
     or 300 s, whichever comes first; send traffic'
    """
    percent, n = cfg.steps[index], cfg.min_requests
    return (
        f"rollout: canary at {percent}% (step {index + 1}/{len(cfg.steps)}): waiting for {n} "
        f"canary requests (about {ceil(n * 100 / max(percent, 1))} in all) or "
        f"{cfg.max_step_seconds:.0f} s, whichever comes first; {traffic_hint}"
    )


def step_progress(cfg: RolloutConfig, index: int, seen: int, elapsed: float, stats: str) -> str:
    """A waiting step's progress: canary requests seen / needed, time left, the split."""
    left = max(0.0, cfg.max_step_seconds - elapsed)
    return (
        f"rollout: step {index + 1}/{len(cfg.steps)} at {cfg.steps[index]}%: "
        f"{seen}/{cfg.min_requests} canary requests, judged in at most {left:.0f} s | {stats}"
    )
