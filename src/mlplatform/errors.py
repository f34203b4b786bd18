"""Every error the platform raises on purpose: one class per failure, grouped by kind.

As in KServe's ``errors.py``, each class states the HTTP status it answers with (``status``),
so each adapter translates in one place: the KServe servers
(:mod:`mlplatform.serving.error_handler`), the router and payload sink
(:func:`mlplatform.serving.router.messages.error_reply`) and the CLI
(:func:`mlplatform.cli.base.friendly`: one line, exit code 2).

Kinds, by what the caller can do about them:

======================== ====== =============================================================
kind                     status when
======================== ====== =============================================================
:class:`InvalidInputError` 400  bad data, configuration, options or request: fix the input
:class:`UnauthorizedError` 401  no or a wrong bearer token (feedback, admin API, variant pin)
:class:`NotFoundError`     404  the named model, version, request id, alert or file is absent
:class:`ConflictError`     409  the request contradicts the current state (topology, history)
:class:`TooLargeError`     413  a request over a server's size limits (router, explainer)
:class:`TooManyRequestsError` 429 the server is at its limit of requests in flight: retry
                                after ``retry_after`` seconds (the Retry-After header)
:class:`UnavailableError`  503  a dependency is down or not ready: registry, feature store,
                                upstream server, model not loaded; retry later
:class:`StorageError`      500  a local store (payload log, alert store) failed to read/write
:class:`WorkflowError`     500  a workflow step ran and failed (gate, training, pipeline run,
                                lease, report, DVC); no HTTP meaning
======================== ====== =============================================================

Every message names what was wrong and, where there is one, what to do about it.

>>> DataError("y has NaN").status, GateFailedError.status
(400, 500)
>>> issubclass(FeatureRepoError, UnavailableError)
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar


class PlatformError(Exception):
    """Base class of every error the platform raises on purpose (HTTP 500 unless a kind says)."""

    status: ClassVar[int] = 500


# -- 400: the input is wrong -------------------------------------------------------------------
class InvalidInputError(PlatformError):
    """Kind: bad data, configuration, options or request; the reason says what to fix."""

    status: ClassVar[int] = 400


class ConfigError(InvalidInputError):
    """The configuration file or an environment override is invalid."""


class UsageError(InvalidInputError):
    """A command got an unknown choice or options that do not go together."""


class DataError(InvalidInputError):
    """Input data is unusable: empty, wrong shape, NaN/inf, non-numeric, unknown category."""


class UnknownEntityError(DataError):
    """Online lookup of entity ids the online store has never seen (not materialized)."""

    def __init__(self, entity: str, missing: list[int]) -> None:
        self.entity = entity
        self.missing = missing
        super().__init__(
            f"unknown {entity} {missing}: not in the online store "
            "(never written, or not materialized yet)"
        )


class DriftError(InvalidInputError):
    """Drift cannot be computed: an empty sample, a non-numeric value, a missing column."""


class ExplanationError(InvalidInputError):
    """An explanation could not be computed for the given input (background, rows, options)."""


class WindowError(InvalidInputError):
    """A monitoring window is empty, reversed or not finite."""


class PayloadWindowError(InvalidInputError):
    """The payload log to monitor is missing, or its rows lack the model's features."""


class RequestError(InvalidInputError):
    """A server rejects a request: malformed JSON, wrong body shape, bad header or value."""


class EventError(InvalidInputError):
    """A POST to the payload sink is not a KServe inference CloudEvent (ce-id, ce-type)."""


# -- 401: the caller did not prove who it is --------------------------------------------------
class UnauthorizedError(PlatformError):
    """Kind: a route that needs a bearer token got none or a wrong one; send the right token."""

    status: ClassVar[int] = 401


class TokenError(UnauthorizedError):
    """Feedback, the router's admin API or a variant pin without the right bearer token."""


# -- 404: the named thing does not exist -------------------------------------------------------
class NotFoundError(PlatformError):
    """Kind: the named model, version, request id, alert or file does not exist."""

    status: ClassVar[int] = 404


class UnknownModelError(NotFoundError):
    """A request names a model this router does not serve."""


class ModelVersionNotFoundError(NotFoundError):
    """The registry has no such model version, or no version holds the alias."""


class ReferenceNotFoundError(NotFoundError):
    """A registered model version has no drift reference (logged at registration)."""

    def __init__(self, model: str, version: str) -> None:
        self.model = model
        self.version = version
        super().__init__(
            f"model {model!r} version {version} has no drift reference "
            "(reference/train_sample.parquet): register it through the pipeline "
            "(`mlplatform pipeline run`), which logs the training sample with the version"
        )


class ExplainerNotConfiguredError(NotFoundError):
    """An explanation was asked of a router started without an explainer (--explainer-url)."""


class UnknownRequestError(NotFoundError):
    """Feedback names request ids that are not in the payload log."""

    def __init__(self, missing: Sequence[str]) -> None:
        self.missing = list(missing)
        super().__init__(
            f"unknown request id(s) {self.missing}: not in the payload log "
            "(use the x-request-id header of the prediction's response)"
        )


class AlertNotFoundError(NotFoundError):
    """The alert store has no alert with this id."""


class NotTrackedError(NotFoundError):
    """A path has no ``.dvc`` file (or it records no md5): it is not under DVC."""


class DataVersionNotFoundError(NotFoundError):
    """The DVC remote holds no object with the requested data version (md5): never pushed there."""

    def __init__(self, version: str, remote: str) -> None:
        self.version = version
        self.remote = remote
        super().__init__(
            f"data version {version} is not in the DVC remote {remote}: push it first "
            "(`mlplatform data push --config ... --remote ...`) or set data.remote to the remote "
            "that holds it"
        )


# -- 409: the request contradicts the current state --------------------------------------------
class ConflictError(PlatformError):
    """Kind: the request contradicts the current state (traffic topology, logged history)."""

    status: ClassVar[int] = 409


class DuplicateRequestError(ConflictError):
    """A request id was logged twice; request ids must be unique."""


class LabelConflictError(ConflictError):
    """Feedback gives a request another label than the one stored: the first label wins."""

    def __init__(self, conflicts: Sequence[str]) -> None:
        self.conflicts = list(conflicts)
        super().__init__(
            f"request id(s) {self.conflicts} already have another label: the first label wins; "
            "this attempt is recorded (feedback_rejected) and nothing was stored"
        )


class TrafficError(ConflictError):
    """A traffic change the topology does not allow (no canary attached) or a backend refused."""


class AlertTransitionError(ConflictError):
    """An alert was moved along a transition its state does not allow."""


# -- 413: the request is too large -------------------------------------------------------------
class TooLargeError(PlatformError):
    """Kind: a request over a server's limits (``serve.max_body_bytes``, ``max_instances``, ...)."""

    status: ClassVar[int] = 413


class BodyTooLargeError(TooLargeError):
    """A request body is longer than ``serve.max_body_bytes``."""


class TooManyInstancesError(TooLargeError):
    """A request to the router holds more instances than ``serve.max_instances``."""


class TooManyRowsToExplainError(TooLargeError):
    """An ``:explain`` request holds more rows than ``serve.explain_max_rows``."""


# -- 429: too many requests in flight; retry after a while -------------------------------------
class TooManyRequestsError(PlatformError):
    """Kind: the server is at its limit of requests in flight; retry after ``retry_after`` s."""

    status: ClassVar[int] = 429

    def __init__(self, message: str, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class ExplainerBusyError(TooManyRequestsError):
    """The explainer already computes ``serve.explain_max_concurrent`` explanations."""


# -- 503: a dependency is down or not ready ----------------------------------------------------
class UnavailableError(PlatformError):
    """Kind: a dependency is down or not ready (registry, feature store, upstream); retry later."""

    status: ClassVar[int] = 503


class ModelNotLoadedError(UnavailableError):
    """No usable model: the file is missing or invalid, or a server has not loaded it yet."""


class FeatureRepoError(UnavailableError):
    """The feature store cannot be used: missing or invalid YAML, unset variables, not applied."""


class FeaturesNotMaterializedError(FeatureRepoError):
    """The online store was never filled (``mlplatform features materialize`` not run yet)."""


class UpstreamError(UnavailableError):
    """An upstream server (predictor, router, payload sink) is unreachable or failed."""


class ExplainDeadlineError(UnavailableError):
    """An explanation was stopped at ``serve.explain_deadline_seconds``, unfinished."""


class RouterNotStartedError(UnavailableError):
    """The router was asked to log a request before its start-up opened the payload log."""


class StackError(UnavailableError):
    """A local server did not start (the message names it and shows its last log lines)."""


class StoreUnavailableError(UnavailableError):
    """A store's database (payload log, alert store) does not answer or cannot be migrated."""


class OnlineStoreUnavailableError(UnavailableError):
    """The feature store's online store (Redis) refused the connection or did not answer in time."""


class RegistryUnavailableError(UnavailableError):
    """The model registry (MLflow tracking server or database) is unreachable or timed out."""


# -- 503: a store could not be written or read --------------------------------------------------
class StorageError(PlatformError):
    """Kind: a store could not be read or written (disk full, locked, closed): retry later."""

    status = 503


class PayloadLogError(StorageError):
    """The payload log could not store a row (closed store, disk full, locked file)."""


class AlertStoreError(StorageError):
    """The alert store could not be read or written (locked file, disk full, bad path)."""


# -- 500: a workflow step ran and failed -------------------------------------------------------
class WorkflowError(PlatformError):
    """Kind: a workflow step ran and its outcome is a failure; no HTTP meaning (status 500)."""


class DivergenceError(WorkflowError):
    """Gradient descent diverged (non-finite or rising loss)."""


class GateFailedError(WorkflowError):
    """The candidate did not pass the validation gate; the message lists the failed checks."""


class PipelineRunError(WorkflowError):
    """A pipeline task failed; the message names the task and the reason."""


class AlertLeaseLostError(WorkflowError):
    """A claimer recorded a run on an alert that another owner has claimed since."""


class ReportError(WorkflowError):
    """Evidently could not compute or render the drift report."""


class DvcCommandError(WorkflowError):
    """A ``dvc`` command exited non-zero; the message carries the command and DVC's own error."""


class LoopError(WorkflowError):
    """A step of the closed-loop demo did not do what the story needs (the message says which)."""
