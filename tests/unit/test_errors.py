"""The one error hierarchy: every class in ``mlplatform.errors`` states its HTTP status and when
it is raised, no other module defines a platform error, and the CLI turns each kind into one
line and exit code 2."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
import typer

import mlplatform.errors as errors
from mlplatform.cli.base import friendly
from mlplatform.errors import PlatformError

PACKAGE = Path(errors.__file__).resolve().parent

#: The oracle, written out: every error class and the HTTP status it answers with.
EXPECTED_STATUS: dict[str, int] = {
    "PlatformError": 500,
    # 400
    "InvalidInputError": 400,
    "ConfigError": 400,
    "UsageError": 400,
    "DataError": 400,
    "UnknownEntityError": 400,
    "DriftError": 400,
    "ExplanationError": 400,
    "WindowError": 400,
    "PayloadWindowError": 400,
    "RequestError": 400,
    "EventError": 400,
    # 401
    "UnauthorizedError": 401,
    "TokenError": 401,
    # 404
    "NotFoundError": 404,
    "UnknownModelError": 404,
    "ModelVersionNotFoundError": 404,
    "ReferenceNotFoundError": 404,
    "ExplainerNotConfiguredError": 404,
    "UnknownRequestError": 404,
    "AlertNotFoundError": 404,
    "NotTrackedError": 404,
    "DataVersionNotFoundError": 404,
    # 409
    "ConflictError": 409,
    "DuplicateRequestError": 409,
    "LabelConflictError": 409,
    "TrafficError": 409,
    "AlertTransitionError": 409,
    # 413
    "TooLargeError": 413,
    "BodyTooLargeError": 413,
    "TooManyInstancesError": 413,
    "TooManyRowsToExplainError": 413,
    # 429
    "TooManyRequestsError": 429,
    "ExplainerBusyError": 429,
    # 503
    "UnavailableError": 503,
    "ModelNotLoadedError": 503,
    "FeatureRepoError": 503,
    "FeaturesNotMaterializedError": 503,
    "UpstreamError": 503,
    "ExplainDeadlineError": 503,
    "RouterNotStartedError": 503,
    "StackError": 503,
    "StoreUnavailableError": 503,
    "OnlineStoreUnavailableError": 503,
    "RegistryUnavailableError": 503,
    # 500
    "StorageError": 503,
    "PayloadLogError": 503,
    "AlertStoreError": 503,
    "WorkflowError": 500,
    "DivergenceError": 500,
    "GateFailedError": 500,
    "PipelineRunError": 500,
    "AlertLeaseLostError": 500,
    "ReportError": 500,
    "DvcCommandError": 500,
    "LoopError": 500,
}

#: One representative of each kind, with the message the user must see.
REPRESENTATIVES = [
    errors.DataError("y has NaN values"),
    errors.ModelVersionNotFoundError("model 'm' has no version 9"),
    errors.TrafficError("no canary to promote"),
    errors.FeatureRepoError("feature store config not found"),
    errors.GateFailedError("gate failed: rmse too high"),
]


def _classes() -> dict[str, type[PlatformError]]:
    return {
        name: cls
        for name, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, PlatformError) and cls.__module__ == errors.__name__
    }


def test_every_error_states_its_status_and_when_it_is_raised() -> None:
    classes = _classes()
    assert set(classes) == set(EXPECTED_STATUS)
    for name, cls in classes.items():
        assert type(cls.status) is int, name
        assert cls.status == EXPECTED_STATUS[name], name
        doc = vars(cls).get("__doc__") or ""
        assert doc.strip() and "\n" not in doc.strip(), f"{name} needs a one-line docstring"


def test_kinds_group_the_errors() -> None:
    kinds = {
        errors.InvalidInputError: 400,
        errors.UnauthorizedError: 401,
        errors.NotFoundError: 404,
        errors.ConflictError: 409,
        errors.TooLargeError: 413,
        errors.TooManyRequestsError: 429,
        errors.UnavailableError: 503,
        errors.StorageError: 503,
        errors.WorkflowError: 500,
    }
    for name, cls in _classes().items():
        if cls is PlatformError or cls in kinds:
            continue
        owners = [k for k in kinds if issubclass(cls, k)]
        assert len(owners) == 1, f"{name} belongs to {owners}, not to exactly one kind"
        assert cls.status == kinds[owners[0]], name


def test_errors_are_defined_only_in_errors_py() -> None:
    names = set(EXPECTED_STATUS)
    elsewhere = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "errors.py" and path.parent == PACKAGE:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                bases = {b.id for b in node.bases if isinstance(b, ast.Name)}
                if bases & names or node.name.endswith("Error"):
                    elsewhere.append(f"{path.relative_to(PACKAGE)}: {node.name}")
    assert elsewhere == []
    assert list(PACKAGE.rglob("errors.py")) == [PACKAGE / "errors.py"]


def test_errors_keep_their_data() -> None:
    entity = errors.UnknownEntityError("house_id", [0, 9999])
    assert entity.missing == [0, 9999] and "house_id [0, 9999]" in str(entity)
    request = errors.UnknownRequestError(("a", "b"))
    assert request.missing == ["a", "b"] and "['a', 'b']" in str(request)


@pytest.mark.parametrize("exc", REPRESENTATIVES, ids=lambda e: type(e).__name__)
def test_cli_prints_one_line_and_exits_2_for_every_kind(
    exc: PlatformError, capsys: pytest.CaptureFixture[str]
) -> None:
    @friendly
    def command() -> None:
        raise exc

    with pytest.raises(typer.Exit) as info:
        command()
    assert info.value.exit_code == 2
    err = capsys.readouterr().err
    assert f"error: {exc}" in err and "Traceback" not in err
