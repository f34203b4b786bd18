"""Shared pieces of the CLI: the Typer app, consoles, error handling."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.markup import escape

from mlplatform.errors import PlatformError
from mlplatform.reporting.console import (
    console,
    epoch_progress,
    err_console,
    library_output,
    plain_unless_terminal,
    print_metrics,
    set_verbose,
)

app = typer.Typer(
    help="mlplatform: gradient descent, explanations and the MLOps loop, on a laptop or a cluster.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
F = TypeVar("F", bound=Callable[..., Any])

ConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", help="Config YAML (see configs/).", show_default=True)
]

__all__ = [
    "ConfigOpt",
    "app",
    "console",
    "epoch_progress",
    "err_console",
    "friendly",
    "library_output",
    "print_metrics",
    "rollout_hint",
]


def rollout_hint(config: Path, what: str) -> str:
    """The one line that sends a newly registered challenger (``what``) to a canary."""
    return (
        f"next: `mlplatform rollout --config {config}` canaries {what} (a running "
        "`mlplatform serve` attaches it by itself)"
    )


@app.callback()
def _options(
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            envvar="MLPLATFORM_VERBOSE",
            help="Show what libraries print, log and warn (kfp.local task logs, Feast, MLflow) "
            "instead of writing it to <artifacts_dir>/logs/pipelines.log.",
        ),
    ] = False,
) -> None:
    set_verbose(verbose)
    if verbose:  # libraries' own colour codes reach a pipe or a file as plain text
        sys.stdout = plain_unless_terminal(sys.stdout)
        sys.stderr = plain_unless_terminal(sys.stderr)


def friendly(func: F) -> F:
    """The CLI's one translation of errors: every :class:`~mlplatform.errors.PlatformError`
    (any kind) and I/O error becomes one readable line and exit code 2 (no traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except PlatformError as exc:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
            raise typer.Exit(2) from None
        except OSError as exc:
            text = escape(f"{exc.strerror or exc}: {exc.filename or ''}")
            err_console.print(f"[bold red]error:[/] {text}", highlight=False)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]
