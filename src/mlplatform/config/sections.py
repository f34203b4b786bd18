"""The sections of the config, one per stage: only declarations (fields, their ranges and a
description each). :class:`~mlplatform.config.PlatformConfig` puts them together."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from mlplatform.config.types import KSMethod, Percent, _Strict


class FeatureSpec(_Strict):
    """One input feature of a model."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Column name in the data.")
    kind: Literal["numeric", "categorical"] = Field(description="How the feature is encoded.")
    description: str = Field(default="", description="What the feature means, with its unit.")
    unit: str | None = Field(
        default=None, description="Unit of the values (VND, km), shown in explanations and plots."
    )


class DataConfig(_Strict):
    """Which dataset to generate or load, and how to split it."""

    dataset: Literal["house", "credit", "diabetes"] = Field(description="Dataset generator.")
    rows: int = Field(default=5000, gt=10, le=50_000_000, description="Rows to generate.")
    seed: int = Field(default=42, description="Seed of the generator and the split.")
    noise: float = Field(default=0.1, ge=0, le=5, description="Noise sd relative to signal sd.")
    outlier_fraction: float = Field(
        default=0.0, ge=0, lt=0.5, description="Share of rows whose target is corrupted."
    )
    shift: float = Field(
        default=0.0, ge=0, le=5, description="Distribution shift strength (0 = baseline world)."
    )
    start_date: str = Field(
        default="2026-01-01", description="First event timestamp (UTC, ISO date)."
    )
    days: int = Field(default=180, gt=0, description="Event timestamps spread over this many days.")
    val_fraction: float = Field(default=0.15, gt=0, lt=0.5, description="Validation share.")
    test_fraction: float = Field(default=0.15, gt=0, lt=0.5, description="Test share.")
    data_dir: Path = Field(default=Path("data"), description="Where Parquet files are written.")
    remote: str | None = Field(
        default=None,
        description="DVC remote URL the data versions live in (s3://bucket/prefix on the cluster, "
        "endpoint from AWS_ENDPOINT_URL); None = this repo's default remote (.dvc/config).",
    )
    version: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{32}$",
        description="DVC md5 of the data file a pipeline run trains on, fetched from `remote` and "
        "verified; None = the current local file (data_dir).",
    )


class NormalizeConfig(_Strict):
    """Feature scaling, fitted on the training split only."""

    method: Literal["minmax", "zscore"] = Field(
        default="minmax", description="minmax: (x-min)/(max-min); zscore: (x-mean)/sd."
    )
    out_of_range: Literal["extrapolate", "clip", "error"] = Field(
        default="extrapolate",
        description="What to do at serving with values outside the training range.",
    )
    scale_target: bool = Field(
        default=True, description="Standardize a regression target while training."
    )


class TrainConfig(_Strict):
    """The gradient-descent trainer."""

    loss: Literal["mse", "mae", "huber", "logistic"] = Field(description="Loss to minimize.")
    huber_delta: float = Field(default=1.0, gt=0, description="Huber δ (in target units).")
    learning_rate: float | Literal["auto"] = Field(
        default=0.1,
        description="Step size η > 0, or 'auto' = 1/L from the loss's smoothness constant L.",
    )
    epochs: int = Field(default=500, gt=0, le=10_000_000, description="Maximum epochs.")
    batch_size: int | None = Field(
        default=None, gt=0, description="Mini-batch size; None = full batch."
    )
    l2: float = Field(default=0.0, ge=0, description="L2 penalty λ on the weights (not bias).")
    early_stopping_patience: int | None = Field(
        default=20, gt=0, description="Stop after this many epochs without validation gain."
    )
    min_delta: float = Field(default=1e-10, ge=0, description="Smallest relative gain counted.")
    divergence_factor: float = Field(
        default=10.0, gt=1, description="Loss above factor × best loss means divergence."
    )
    cache_gram: bool = Field(
        default=False, description="MSE full batch only: cache XᵀX so an epoch costs O(d²)."
    )
    seed: int = Field(default=0, description="Seed for mini-batch shuffling.")
    threshold: float = Field(
        default=0.5, gt=0, lt=1, description="Classification decision threshold."
    )

    @field_validator("learning_rate")
    @classmethod
    def _eta(cls, v: float | str) -> float | str:
        if v != "auto" and not 0 < float(v) <= 1e3:
            raise ValueError("must be in (0, 1000] or 'auto'")
        return v

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.cache_gram and (self.loss != "mse" or self.batch_size is not None):
            raise ValueError("cache_gram needs loss 'mse' and full batch (batch_size null)")
        return self


class ExplainConfig(_Strict):
    """LIME, Anchor and explanation-quality settings."""

    class_names: tuple[str, str] = Field(
        default=("negative", "positive"), description="Labels of class 0 and 1 in rules."
    )
    background_rows: int = Field(
        default=2000, ge=10, description="Training rows sampled as the explainers' background."
    )
    num_samples: int = Field(default=2000, ge=50, le=1_000_000, description="LIME neighbours.")
    kernel_width: float | None = Field(
        default=None, gt=0, description="σ of π_x(z)=exp(-D²/σ²); None = 0.75·sqrt(d)."
    )
    num_features: int = Field(default=5, gt=0, description="K: features kept by the surrogate.")
    feature_selection: Literal["none", "forward", "lasso"] = Field(
        default="forward", description="How the sparse surrogate picks its K features."
    )
    ridge_alpha: float = Field(default=1.0, ge=0, description="Ridge penalty of the surrogate.")
    representation: Literal["continuous", "quartile"] = Field(
        default="continuous",
        description="LIME's inputs: numeric values (slopes per normalized unit) or, as lime's "
        "default, 'same training quartile as x' indicators.",
    )
    reference: Literal["mean", "median"] | tuple[float | str, ...] = Field(
        default="mean",
        description="Reference point b of the contributions c_j = β_j (x_j − b_j): the "
        "background's mean or median (categoricals: most frequent), or a raw row in feature "
        "order.",
    )
    sample_rows: int = Field(default=30, gt=0, description="Rows explained for model metrics.")
    stability_seeds: int = Field(default=5, ge=2, description="Seeds for stability metrics.")
    perturbation_scale: float = Field(
        default=0.01, gt=0, description="Input noise (normalized units) for stability."
    )
    anchor_threshold: float = Field(default=0.95, gt=0, lt=1, description="Precision τ.")
    anchor_delta: float = Field(default=0.05, gt=0, lt=1, description="Confidence 1-δ.")
    anchor_epsilon: float = Field(default=0.1, gt=0, lt=1, description="KL-LUCB tolerance ε.")
    anchor_beam_size: int = Field(default=2, gt=0, description="Beam width B.")
    anchor_bins: int = Field(default=4, ge=2, le=20, description="Quantile bins per numeric.")
    anchor_max_length: int = Field(default=4, gt=0, description="Longest rule.")
    anchor_batch_size: int = Field(default=100, gt=0, description="Samples per bandit pull.")
    coverage_samples: int = Field(default=5000, gt=0, description="Rows to estimate coverage.")
    anchor_regression_tolerance: float = Field(
        default=0.1,
        gt=0,
        description="Regression: a sample agrees when |f(z)-f(x)| <= tol × sd of predictions.",
    )


class GateConfig(_Strict):
    """The promotion gate: absolute thresholds, then the current champion to beat."""

    max_rmse: float | None = Field(default=None, gt=0, description="Regression: RMSE ceiling.")
    min_r2: float | None = Field(default=0.5, le=1, description="Regression: R² floor.")
    min_auc: float | None = Field(default=0.7, ge=0, le=1, description="Classification: AUC.")
    min_f1: float | None = Field(default=None, ge=0, le=1, description="Classification: F1.")
    min_lime_fidelity_r2: float | None = Field(
        default=0.5, le=1, description="Mean weighted R² of the LIME surrogates."
    )
    min_anchor_precision: float | None = Field(
        default=0.8, ge=0, le=1, description="Mean precision of the anchor rules."
    )
    fail_pipeline: bool = Field(
        default=True, description="A failed gate fails the gate task (nothing registered)."
    )
    champion_margin: float = Field(
        default=0.0,
        ge=-1,
        le=1,
        description="Relative gain over the champion's primary metric the candidate needs "
        "(RMSE for regression, ROC AUC for classification); negative tolerates a small loss.",
    )


class RegistryConfig(_Strict):
    """MLflow tracking and model registry."""

    tracking_uri: str = Field(
        default="sqlite:///mlruns/mlflow.db",
        description="sqlite:///path for the embedded default; http://mlflow:5000 on the cluster.",
    )
    artifact_root: str = Field(
        default="mlruns/artifacts",
        description="Artifact location for new experiments: a local folder, or a URI such as "
        "mlflow-artifacts:/mlplatform (proxied by the tracking server) or s3://bucket/path.",
    )
    experiment: str = Field(default="mlplatform", description="MLflow experiment name.")
    request_timeout_s: int = Field(
        default=10,
        gt=0,
        description="Seconds MLflow's client waits for the tracking server per request "
        "(MLFLOW_HTTP_REQUEST_TIMEOUT); an outage fails in about (retries + 1) x this.",
    )
    request_retries: int = Field(
        default=2,
        ge=0,
        le=10,
        description="Retries of a failed request to the tracking server "
        "(MLFLOW_HTTP_REQUEST_MAX_RETRIES; MLflow's own default, 7, waits minutes).",
    )


class FeatureStoreConfig(_Strict):
    """The Feast feature repository."""

    repo_dir: Path = Field(default=Path("feature_repo"), description="Feast repo folder.")
    store_yaml: Path | None = Field(
        default=None,
        description="feature_store YAML; None = <repo_dir>/feature_store.yaml (embedded). "
        "The cluster uses feature_store.cluster.yaml (Redis online store).",
    )
    online_timeout_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="Connect and read timeout of the Redis online store, in seconds (unless "
        "its connection string sets socket_timeout); a lookup fails within a few times this.",
    )


class ServeConfig(_Strict):
    """Serving: the local stack on loopback (router, predictors, transformer, explainer), the
    router's traffic split and limits, and the payload log (written by the router locally and
    by the payload sink on the cluster)."""

    host: str = Field(default="127.0.0.1", description="Bind address of every local server.")
    router_port: int = Field(default=8080, ge=1, le=65535, description="Clients call this.")
    router_admin_port: int = Field(
        default=8090,
        ge=1,
        le=65535,
        description="The router's admin API (/admin/*, /metrics; admin token), on loopback.",
    )
    stable_port: int = Field(default=8081, ge=1, le=65535, description="Champion predictor.")
    canary_port: int = Field(default=8082, ge=1, le=65535, description="Challenger predictor.")
    transformer_port: int = Field(default=8083, ge=1, le=65535, description="Feast transformer.")
    explainer_port: int = Field(default=8084, ge=1, le=65535, description="LIME/Anchor explainer.")
    canary_percent: Percent = Field(default=10, description="Initial canary share.")
    payload_store: str = Field(
        default="sqlite:///artifacts/payloads.db",
        description="SQLAlchemy URL of the payload log: a SQLite file (embedded) or "
        "postgresql://user:password@host:5432/db (cluster); migrated on open.",
    )
    max_instances: int = Field(default=10_000, gt=0, description="Rows per request, at most.")
    max_body_bytes: int = Field(
        default=8_000_000, gt=0, description="Largest request body accepted (HTTP 413 above)."
    )
    upstream_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Router: timeout of a call to a predictor (then 503)."
    )
    retry_canary_on_stable: bool = Field(
        default=True, description="Router: retry a failed, unpinned canary request on stable."
    )
    reservoir_size: int = Field(
        default=2000,
        gt=0,
        description="Router: recent predictions kept per variant for the rollout's shift test.",
    )
    recent_predictions_max_bytes: int = Field(
        default=32 * 2**20,
        gt=0,
        description="Router: bytes of recent predictions kept to score feedback by variant "
        "(oldest dropped first).",
    )
    drain_seconds: float = Field(
        default=30.0,
        ge=0,
        description="Router: promote/rollback wait this long at most for the retired variant's "
        "requests in flight.",
    )
    payload_retention_days: float = Field(
        default=30.0,
        gt=0,
        description="Payload log: requests older than this are deleted with their labels by "
        "`mlplatform payloads prune` (a daily CronJob on the cluster).",
    )
    payload_max_rows: int | None = Field(
        default=None,
        gt=0,
        description="Payload log: at most this many requests are kept by the prune, newest "
        "first (None: no cap).",
    )
    response_grace_seconds: float = Field(
        default=30.0,
        ge=0,
        description="Payload sink: a request with no logged response this long after it "
        "arrived counts as an error.",
    )
    explain_max_rows: int = Field(
        default=100, gt=0, description="Explainer: rows per :explain request, at most (413 above)."
    )
    explain_max_concurrent: int = Field(
        default=2,
        gt=0,
        description="Explainer: explanations computed at once per process; a request beyond "
        "them is answered 429 with Retry-After, not queued.",
    )
    explain_deadline_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Explainer: an explanation still running this long after it started is "
        "stopped (no more predictions) and answered 503 with the reason.",
    )
    explain_version_check_seconds: float = Field(
        default=10.0,
        ge=0,
        description="Explainer: how long a check that the predictor serves the explainer's "
        "model version holds; while it does, the explainer predicts in-process, else over "
        "HTTP. 0 = check before every request.",
    )


class RolloutConfig(_Strict):
    """Canary steps and the metrics that must hold against the stable variant at each step."""

    steps: tuple[int, ...] = Field(default=(10, 50, 100), description="Canary % per step.")
    min_requests: int = Field(default=200, gt=0, description="Canary requests before judging.")
    max_step_seconds: float = Field(default=300, gt=0, description="Judge after this at latest.")
    max_error_rate: float = Field(default=0.01, ge=0, le=1, description="Canary error ceiling.")
    max_error_rate_increase: float = Field(
        default=0.005, ge=0, le=1, description="Canary error rate minus stable's, at most."
    )
    max_p95_latency_ratio: float = Field(
        default=1.5, gt=0, description="Canary p95 latency / stable p95, at most."
    )
    p95_latency_slack_ms: float = Field(
        default=5.0,
        ge=0,
        description="A canary p95 at most this many ms above stable's never fails the latency "
        "ratio (at a few ms, a ratio is scheduling noise).",
    )
    max_prediction_shift: float = Field(
        default=0.3, gt=0, le=1, description="KS statistic between the variants' predictions."
    )
    max_ground_truth_error_ratio: float | None = Field(
        default=1.2, gt=0, description="Canary / stable error on labelled traffic, at most."
    )
    min_labels: int = Field(
        default=30,
        gt=0,
        description="Labelled predictions each variant needs before the ground-truth error "
        "ratio decides alone: the prediction shift is then reported but not judged.",
    )
    min_explain_fidelity: float | None = Field(
        default=0.5, le=1, description="Canary's LIME weighted R² from its registry run."
    )


class MonitorConfig(_Strict):
    """Windows, drift tests, alert cooldown and retrain-claim lease of the monitor job."""

    window_seconds: int = Field(
        default=3600, gt=0, description="Length of the aligned monitoring window, seconds."
    )
    window_lag_seconds: float = Field(
        default=0.0,
        ge=0,
        description="Judge the last window that ended this long before now (lets feedback land).",
    )
    endpoints: tuple[str, ...] = Field(
        default=("predict", "infer"),
        min_length=1,
        description="Payload endpoints whose requests are monitored (not 'explain').",
    )
    min_rows: int = Field(
        default=100, gt=0, description="Fewer logged rows in a window: no data-drift verdict."
    )
    ks_method: KSMethod = Field(
        default="auto",
        description="KS p-value as scipy's ks_2samp: auto = exact up to 10 000 rows (Evidently).",
    )
    ks_fast_tail: bool = Field(
        default=True,
        description="Deep-tail KS p-values (< 1e-4) from the limiting Kolmogorov distribution: "
        "same verdicts, ~20x cheaper at 1e5 rows; False = scipy's value everywhere.",
    )
    cat_method: Literal["chi2", "chisquare", "psi"] = Field(
        default="chi2",
        description="Categorical test: chi2 = 2×k contingency χ²; chisquare = Evidently's "
        "goodness of fit to the reference shares; psi = population stability index.",
    )
    threshold: float = Field(
        default=0.05, gt=0, lt=1, description="p-value at or below which a column drifts."
    )
    psi_threshold: float = Field(default=0.1, gt=0, description="PSI at or above which it drifts.")
    drift_share: float = Field(
        default=0.5, gt=0, le=1, description="Dataset drift when this share of columns drifts."
    )
    concept_tolerance: float = Field(
        default=0.2,
        ge=0,
        description="Concept drift when labelled error > validation error × (1 + tolerance).",
    )
    min_labels: int = Field(
        default=30, gt=0, description="Fewer labelled rows in a window: no concept-drift verdict."
    )
    max_error_rate: float = Field(
        default=0.01, ge=0, le=1, description="Health: error rate (5xx or no response) ceiling."
    )
    max_p95_latency_ms: float = Field(default=500.0, gt=0, description="Health: p95 ceiling.")
    cooldown_seconds: float = Field(
        default=86_400.0,
        ge=0,
        description="No new alert for a model whose last alert's window ended less than this "
        "long before or after (event time); such windows are stored as 'suppressed'.",
    )
    claim_lease_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="A claimed alert whose claimer recorded no run within this is re-claimable.",
    )
    retrain_retry_seconds: float = Field(
        default=300.0,
        gt=0,
        description="Retrain trigger: a run start that failed for a transient reason (a "
        "dependency down) is retried after this, doubled after each failure.",
    )
    retrain_max_attempts: int = Field(
        default=5,
        ge=1,
        description="Retrain trigger: starts tried per alert before it is marked 'failed' "
        "(a permanent error marks it at once).",
    )
    alert_store: str = Field(
        default="sqlite:///artifacts/alerts.db",
        description="SQLAlchemy URL of the alert store with the retrain claims: a SQLite file "
        "(embedded) or postgresql://... (cluster, the payload log's database); migrated on open.",
    )
    reports_dir: str = Field(
        default="artifacts/monitoring",
        description="Where the monitor writes its JSON/HTML reports: a local folder, or "
        "s3://bucket/prefix (written with s3fs; endpoint from MLFLOW_S3_ENDPOINT_URL as MLflow "
        "reads it, else AWS_ENDPOINT_URL). On the cluster never the image root.",
    )
    html_report: bool = Field(
        default=True, description="Render Evidently's DataDriftPreset HTML for every window."
    )
