"""Shared pieces of the CLI: the Typer app, consoles, error handling, progress bars."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mlplatform.core.gd import EpochCallback
from mlplatform.errors import PlatformError

app = typer.Typer(
    help="mlplatform: gradient descent, explanations and the MLOps loop, on a laptop or a cluster.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])

ConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", help="Config YAML (see configs/).", show_default=True)
]


def friendly(func: F) -> F:
    """Turn platform and I/O errors into one readable line and exit code 2 (no traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except PlatformError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
            raise typer.Exit(2) from None
        except OSError as exc:
            err_console.print(f"[bold red]error:[/] {exc.strerror or exc}: {exc.filename or ''}")
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


@contextmanager
def epoch_progress(label: str, total: int) -> Iterator[EpochCallback]:
    """A progress bar fed by the trainer's per-epoch callback."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console, transient=False) as progress:
        task = progress.add_task(label, total=total, loss="-")

        def on_epoch(epoch: int, loss: float, val: float | None) -> None:
            if epoch % 25 == 0 or epoch == total:
                shown = f"{loss:.4g}" + (f" (val {val:.4g})" if val is not None else "")
                progress.update(task, completed=epoch, loss=shown)

        yield on_epoch
        progress.update(task, completed=total)


def print_metrics(title: str, metrics: dict[str, dict[str, float]]) -> None:
    table = Table(title=title)
    names = list(next(iter(metrics.values())))
    table.add_column("split")
    for n in names:
        table.add_column(n, justify="right")
    for split, values in metrics.items():
        table.add_row(split, *(f"{values[n]:,.4g}" for n in names))
    console.print(table)
