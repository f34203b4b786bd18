"""What the terminal shows: a progress bar fed by the trainer, a metrics table, and nothing
else by default: what libraries print, log and warn goes to a log file (``--verbose`` shows it).

Used by the CLI and the demo alike (both sit above this module). Rich leaves out colour codes
when a console's stream is not a terminal; library output is kept off the terminal by
:func:`library_output`, and what libraries colour themselves (kfp.local's task names and
states, Feast) reaches a log file or a pipe as plain text (:class:`PlainText`).
"""

from __future__ import annotations

import io
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import IO, cast

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mlplatform.core.gd import EpochCallback

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)
#: Where library output goes, under a config's ``artifacts_dir`` (the kfp.local task logs too).
LOG_FILE = Path("logs") / "pipelines.log"
_settings = {"verbose": False}
#: An ANSI escape sequence (CSI: colours, cursor moves), as kfp.local and Feast print them.
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


class PlainText(io.TextIOBase):
    """A text stream that writes to ``target`` without ANSI escape sequences: libraries that
    colour their output unconditionally (kfp.local does) write plain text to files and pipes.

    >>> out = io.StringIO()
    >>> PlainText(out).write("\x1b[95m'mlplatform-training'\x1b[0m")
    31
    >>> out.getvalue()
    "'mlplatform-training'"
    """

    def __init__(self, target: IO[str]) -> None:
        self.target = target

    def write(self, text: str) -> int:
        self.target.write(ANSI.sub("", text))
        return len(text)

    def flush(self) -> None:
        self.target.flush()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.target.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.target, "encoding", None) or "utf-8"


def plain_unless_terminal(stream: IO[str]) -> IO[str]:
    """``stream`` itself when it is a terminal, else a :class:`PlainText` of it."""
    isatty = getattr(stream, "isatty", None)
    if isinstance(stream, PlainText) or (isatty is not None and isatty()):
        return stream
    return PlainText(stream)  # type: ignore[return-value]


def set_verbose(on: bool) -> None:
    """``--verbose``: leave library output on the terminal (the CLI sets it per invocation)."""
    _settings["verbose"] = on


def is_verbose() -> bool:
    return _settings["verbose"]


@contextmanager
def library_output(artifacts_dir: Path) -> Iterator[Path | None]:
    """Send what libraries print, log and warn inside the block to ``artifacts_dir/LOG_FILE``
    (appended); ``console`` and ``err_console`` keep printing to the terminal. Yields the log
    file, or None under ``--verbose`` (nothing is redirected then). The file gets plain text:
    colour codes a library writes are dropped (:class:`PlainText`)."""
    if is_verbose():
        yield None
        return
    log = artifacts_dir / LOG_FILE
    log.parent.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        fh = cast(IO[str], PlainText(stack.enter_context(log.open("a", encoding="utf-8"))))
        stack.enter_context(_consoles_pinned())
        stack.enter_context(_log_handlers_to(fh))
        stack.enter_context(redirect_stdout(fh))
        stack.enter_context(redirect_stderr(fh))  # warnings, tqdm, logging's last resort
        yield log


@contextmanager
def _consoles_pinned() -> Iterator[None]:
    """Our consoles write to today's stdout/stderr even while those are redirected."""
    saved = [(c, c._file) for c in (console, err_console)]
    console.file, err_console.file = sys.stdout, sys.stderr
    try:
        yield
    finally:
        for c, file in saved:
            c._file = file


def _stream_handlers() -> Iterator[logging.StreamHandler[IO[str]]]:
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in loggers:
        for h in getattr(logger, "handlers", ()):
            # dill's _StderrHandler follows sys.stderr by itself (its stream has no setter)
            kept = not isinstance(h, logging.FileHandler) and type(h).__name__ != "_StderrHandler"
            if isinstance(h, logging.StreamHandler) and kept:
                yield h


@contextmanager
def _log_handlers_to(fh: IO[str]) -> Iterator[None]:
    """Handlers already writing to the terminal write to ``fh``; afterwards they, and any
    handler a library created inside the block on the redirected stream, write to the
    terminal again (``fh`` is closed by then)."""
    terminal = (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)
    moved = {h: h.setStream(fh) for h in _stream_handlers() if h.stream in terminal}
    try:
        yield
    finally:
        for h in _stream_handlers():
            if h.stream is fh:
                h.setStream(moved.get(h) or sys.stderr)


@contextmanager
def epoch_progress(label: str, total: int) -> Iterator[EpochCallback]:
    """A progress bar fed by the trainer's per-epoch callback; it ends at the last epoch run,
    and says so when early stopping ended training before ``total``."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TimeElapsedColumn(),
    )
    last_epoch, last_loss = -1, "-"
    with Progress(*columns, console=err_console, transient=False) as progress:
        task = progress.add_task(label, total=total, loss="-")

        def on_epoch(epoch: int, loss: float, val: float | None) -> None:
            nonlocal last_epoch, last_loss
            last_loss = f"{loss:.4g}" + (f" (val {val:.4g})" if val is not None else "")
            last_epoch = epoch
            if epoch % 25 == 0 or epoch == total:
                progress.update(task, completed=epoch, loss=last_loss)

        yield on_epoch
        early = 0 <= last_epoch < total
        if early:
            progress.update(task, total=last_epoch)
        progress.update(task, completed=max(last_epoch, 0), loss=last_loss)
    if early:
        err_console.print(f"{label}: stopped early at epoch {last_epoch} (of {total})")


def print_metrics(title: str, metrics: dict[str, dict[str, float]]) -> None:
    table = Table(title=title)
    names = list(next(iter(metrics.values())))
    table.add_column("split")
    for n in names:
        table.add_column(n, justify="right")
    for split, values in metrics.items():
        table.add_row(split, *(f"{values[n]:,.4g}" for n in names))
    console.print(table)
