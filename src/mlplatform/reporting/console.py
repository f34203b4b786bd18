"""What the terminal shows: a progress bar fed by the trainer, a metrics table.

Used by the CLI and the demo alike (both sit above this module).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mlplatform.core.gd import EpochCallback

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


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
