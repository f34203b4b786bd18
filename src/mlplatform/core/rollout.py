"""Canary rollout decisions: may the challenger take more traffic from the champion?

At each step of ``RolloutConfig.steps`` (canary share in %) the canary is judged
against the stable variant once it has served ``min_requests`` requests in that
step (or ``max_step_seconds`` have passed; then on what there is). Checks:

    error rate        e_c ≤ max_error_rate  and  e_c ≤ e_s + max_error_rate_increase
    latency           p95_c / p95_s ≤ max_p95_latency_ratio  (or p95_c − p95_s ≤ slack, below)
    prediction shift  KS(ŷ_c, ŷ_s) = sup_t |F_c(t) − F_s(t)| ≤ max_prediction_shift (see below)
    ground truth      err_c / err_s ≤ max_ground_truth_error_ratio (when both are labelled)
    explanation       fidelity_c ≥ min_explain_fidelity (when known)

A check whose inputs are missing (no labels yet, no stable latency) is skipped and named
in the reason. Any failed check → ``rollback``; all passed → ``advance`` to the next
step, or ``promote`` after the last one.

Ground truth outranks the prediction shift: a challenger retrained after drift is meant to
predict differently, and its error on labelled traffic is the better judge. Once both
variants have at least ``min_labels`` labelled predictions (and the ground-truth check is
on), the shift is still computed and shown in the reason but cannot fail the step.

A latency ratio over its limit does not fail the step while the canary's p95 is at most
``p95_latency_slack_ms`` above stable's: at a few milliseconds a ratio measures scheduling
noise (a 2-core machine under load showed 1.68 for one model served twice), while a real
regression (``max_p95_latency_ratio`` and more than the slack) still rolls back.

>>> stable = VariantStats(400, 0, 12.0, np.linspace(0, 1, 400))
>>> canary = VariantStats(250, 1, 13.0, np.linspace(0, 1.1, 250))
>>> d = decide(stable, canary, RolloutConfig(), step_index=0, elapsed_seconds=40.0)
>>> d.action, d.checks[-1].name, round(d.checks[-1].value, 3)
('advance', 'prediction_shift_ks', 0.094)
>>> stable = VariantStats(400, 0, 12.0, np.linspace(0, 1, 400), 1.0, labelled=40)
>>> retrained = VariantStats(250, 0, 13.0, np.linspace(0.5, 1.5, 250), 0.8, labelled=35)
>>> d = decide(stable, retrained, RolloutConfig(), step_index=0, elapsed_seconds=40.0)
>>> d.action, [(c.name, round(c.value, 3), c.passed) for c in d.unjudged]
('advance', [('prediction_shift_ks', 0.502, False)])
>>> "not judged: ground truth on 40 stable / 35 canary labelled predictions decides" in d.reason
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from mlplatform.config import RolloutConfig
from mlplatform.core.gate import Check
from mlplatform.errors import DataError

Action = Literal["wait", "advance", "promote", "rollback"]
FloatArray = NDArray[np.float64]
SHIFT = "prediction_shift_ks"
LATENCY = "p95_latency_ratio"


@dataclass(frozen=True)
class VariantStats:
    """What one variant (stable or canary) did over the rollout so far.

    ``predictions``: a sample of its recent predictions, shape (m,).
    ``ground_truth_error``: mean error on requests that received labels (None: no labels).
    ``labelled``: how many of its predictions received a label (the count behind
    ``ground_truth_error``; one per instance, so one per request of a single row).
    ``explain_fidelity``: LIME weighted R² of its model (None: unknown).
    """

    requests: int
    errors: int
    p95_latency_ms: float | None
    predictions: FloatArray = field(default_factory=lambda: np.zeros(0), compare=False)
    ground_truth_error: float | None = None
    labelled: int = 0
    explain_fidelity: float | None = None

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class Decision:
    """``checks`` decide; ``unjudged`` were computed and reported but could not fail the step
    (the prediction shift while ground truth decides, a latency ratio within the slack)."""

    action: Action
    reason: str
    checks: tuple[Check, ...] = ()
    unjudged: tuple[Check, ...] = ()

    @property
    def failed(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.passed)


def ks_statistic(a: FloatArray, b: FloatArray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic D = max_t |F_a(t) − F_b(t)|.

    ``a``: (n,), ``b``: (m,); the empirical CDFs are evaluated at every pooled value,
    so D equals ``scipy.stats.ks_2samp(a, b).statistic``.
    """
    a = np.sort(np.asarray(a, dtype=np.float64).ravel())
    b = np.sort(np.asarray(b, dtype=np.float64).ravel())
    if a.size == 0 or b.size == 0:
        raise DataError("KS statistic needs two non-empty samples")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise DataError("KS statistic needs finite values (got NaN or inf)")
    pooled = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, pooled, side="right") / a.size
    cdf_b = np.searchsorted(b, pooled, side="right") / b.size
    return float(np.max(np.abs(cdf_a - cdf_b)))


def _check(name: str, value: float, limit: float, op: Literal["<=", ">="]) -> Check:
    return Check(name, value, limit, op, value <= limit if op == "<=" else value >= limit)


def _ratio(num: float | None, den: float | None) -> float | None:
    """num / den; None when either is missing; 1 for 0/0, inf for x/0."""
    if num is None or den is None:
        return None
    if den <= 0:
        return 1.0 if num <= 0 else float("inf")
    return num / den


def _error_checks(stable: VariantStats, canary: VariantStats, cfg: RolloutConfig) -> list[Check]:
    increase = stable.error_rate + cfg.max_error_rate_increase
    return [
        _check("canary_error_rate", canary.error_rate, cfg.max_error_rate, "<="),
        _check("canary_error_rate_vs_stable", canary.error_rate, increase, "<="),
    ]


def _optional_checks(
    stable: VariantStats, canary: VariantStats, cfg: RolloutConfig
) -> tuple[list[Check], list[str]]:
    """The checks whose inputs may be missing; returns (checks, names of skipped checks)."""
    checks: list[Check] = []
    skipped: list[str] = []
    p95 = _ratio(canary.p95_latency_ms, stable.p95_latency_ms)
    wanted: list[tuple[str, float | None, float | None, Literal["<=", ">="]]] = [
        (LATENCY, p95, cfg.max_p95_latency_ratio, "<="),
        (SHIFT, _shift(stable, canary), cfg.max_prediction_shift, "<="),
        (
            "ground_truth_error_ratio",
            _ratio(canary.ground_truth_error, stable.ground_truth_error),
            cfg.max_ground_truth_error_ratio,
            "<=",
        ),
        ("canary_explain_fidelity", canary.explain_fidelity, cfg.min_explain_fidelity, ">="),
    ]
    for name, value, limit, op in wanted:
        if limit is None:
            continue
        if value is None:
            skipped.append(name)
        else:
            checks.append(_check(name, value, limit, op))
    return checks, skipped


def _shift(stable: VariantStats, canary: VariantStats) -> float | None:
    if stable.predictions.size == 0 or canary.predictions.size == 0:
        return None
    return ks_statistic(stable.predictions, canary.predictions)


def ground_truth_decides(stable: VariantStats, canary: VariantStats, cfg: RolloutConfig) -> bool:
    """Whether the ground-truth check is on and both variants have an error measured on at
    least ``cfg.min_labels`` labelled predictions; then the prediction shift is not judged."""
    return (
        cfg.max_ground_truth_error_ratio is not None
        and stable.ground_truth_error is not None
        and canary.ground_truth_error is not None
        and min(stable.labelled, canary.labelled) >= cfg.min_labels
    )


def evaluate(
    stable: VariantStats, canary: VariantStats, cfg: RolloutConfig
) -> tuple[tuple[Check, ...], tuple[Check, ...], tuple[str, ...]]:
    """Every rollout check of ``canary`` against ``stable``: (judged checks, checks reported
    but not judged, skipped check names)."""
    optional, skipped = _optional_checks(stable, canary, cfg)
    checks = (*_error_checks(stable, canary, cfg), *optional)
    waived = {SHIFT} if ground_truth_decides(stable, canary, cfg) else set()
    if latency_within_slack(stable, canary, cfg):
        waived.add(LATENCY)
    judged = tuple(c for c in checks if c.name not in waived)
    return judged, tuple(c for c in checks if c.name in waived), tuple(skipped)


def latency_increase_ms(stable: VariantStats, canary: VariantStats) -> float | None:
    """The canary's p95 latency minus stable's, in ms (None when either is unknown)."""
    if stable.p95_latency_ms is None or canary.p95_latency_ms is None:
        return None
    return canary.p95_latency_ms - stable.p95_latency_ms


def latency_within_slack(stable: VariantStats, canary: VariantStats, cfg: RolloutConfig) -> bool:
    """Whether the latency ratio is over its limit while the canary's p95 is at most
    ``cfg.p95_latency_slack_ms`` above stable's: then the ratio is reported, not judged."""
    ratio = _ratio(canary.p95_latency_ms, stable.p95_latency_ms)
    increase = latency_increase_ms(stable, canary)
    return (
        ratio is not None
        and increase is not None
        and ratio > cfg.max_p95_latency_ratio
        and increase <= cfg.p95_latency_slack_ms
    )


def decide(
    stable: VariantStats,
    canary: VariantStats,
    cfg: RolloutConfig,
    step_index: int,
    elapsed_seconds: float,
    step_requests: int | None = None,
) -> Decision:
    """The next move at step ``step_index`` (0-based) of ``cfg.steps``.

    ``stable``/``canary`` may be cumulative over the rollout; ``step_requests`` is the number
    of canary requests served during this step (default: ``canary.requests``).
    """
    if not 0 <= step_index < len(cfg.steps):
        raise DataError(f"step_index {step_index} outside 0..{len(cfg.steps) - 1}")
    seen = canary.requests if step_requests is None else step_requests
    step = f"step {step_index + 1}/{len(cfg.steps)} ({cfg.steps[step_index]}%)"
    timed_out = elapsed_seconds >= cfg.max_step_seconds
    if seen < cfg.min_requests and not timed_out:
        return Decision("wait", f"{step}: {seen}/{cfg.min_requests} canary requests")
    if seen == 0:
        return Decision(
            "rollback", f"{step}: no canary requests after {elapsed_seconds:.0f}s (timed out)"
        )
    return _judge(stable, canary, cfg, step_index, step)


def _judge(
    stable: VariantStats, canary: VariantStats, cfg: RolloutConfig, step_index: int, step: str
) -> Decision:
    checks, unjudged, skipped = evaluate(stable, canary, cfg)
    failed = [c for c in checks if not c.passed]
    note = f" (skipped, no data: {', '.join(skipped)})" if skipped else ""
    shown = [c.describe() for c in failed or checks]
    shown += [_describe_unjudged(c, stable, canary, cfg) for c in unjudged]
    if failed:
        return Decision("rollback", f"{step} failed: {'; '.join(shown)}{note}", checks, unjudged)
    action: Action = "promote" if step_index == len(cfg.steps) - 1 else "advance"
    return Decision(action, f"{step} passed: {'; '.join(shown)}{note}", checks, unjudged)


def _describe_unjudged(
    check: Check, stable: VariantStats, canary: VariantStats, cfg: RolloutConfig
) -> str:
    """e.g. ``prediction_shift_ks = 0.45 (limit <= 0.3, not judged: ground truth on 40 stable
    / 35 canary labelled predictions decides)`` or ``p95_latency_ratio = 1.68 (limit <= 1.5,
    not judged: canary p95 1.2 ms above stable's, within the 5 ms slack)``."""
    value = "missing" if check.value is None else f"{check.value:.4g}"
    if check.name == LATENCY:
        increase = latency_increase_ms(stable, canary) or 0.0
        why = (
            f"canary p95 {increase:.2g} ms above stable's, within the "
            f"{cfg.p95_latency_slack_ms:g} ms slack"
        )
    else:
        counts = f"{stable.labelled} stable / {canary.labelled} canary labelled predictions"
        why = f"ground truth on {counts} decides"
    return f"{check.name} = {value} (limit {check.op} {check.threshold:.4g}, not judged: {why})"


def describe_stats(stable: VariantStats, canary: VariantStats) -> str:
    """One progress line: requests, error rates and p95 latency of both variants."""

    def one(name: str, s: VariantStats) -> str:
        p95 = "n/a" if s.p95_latency_ms is None else f"{s.p95_latency_ms:.1f}ms"
        return f"{name} {s.requests} req, {s.error_rate:.2%} errors, p95 {p95}"

    return f"{one('stable', stable)}; {one('canary', canary)}"
