"""Progress of long work, on a terminal only: off a terminal (cron, pipes) nothing but the summary.

    with progress("generating patients", total=n) as done:
        for i in ...: done(i + 1)

`done(n)` says how much is finished; it costs nothing when no terminal is watching.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from backfill.cli._app import err_console
from backfill.indicator import Ds14, percent

__all__ = ["SendingBar", "progress"]


def _ignore(_done: int) -> None:
    return None


@contextmanager
def progress(description: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
    """A progress display on stderr while the block runs, when stderr is an interactive terminal."""
    if not err_console.is_interactive:
        yield _ignore
        return
    columns = (
        [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
         TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn()]
        if total is not None
        else [SpinnerColumn(), TextColumn("{task.description}"),
              TextColumn("{task.completed:,}"), TimeElapsedColumn()]
    )  # fmt: skip
    with Progress(*columns, console=err_console, transient=True) as display:
        task = display.add_task(description, total=total)
        yield lambda done: display.update(task, completed=done)


class SendingBar:
    """The pipeline's progress, as a rich bar on stderr (patients done, documents acknowledged)."""

    def __init__(self, total: int | None = None) -> None:
        self._progress = Progress(
            TextColumn("[bold]sending[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("patients · {task.fields[acked]} documents acknowledged"),
            TextColumn("{task.fields[ds14]}"),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
        )
        self._task = self._progress.add_task("send", total=total, acked=0, ds14="")
        self._acked = 0

    def start(self, patients_hint: int | None) -> None:
        if patients_hint is not None:
            self._progress.update(self._task, total=patients_hint)
        self._progress.start()

    def advance(self, documents: int, acked: int) -> None:
        self._acked += acked
        self._progress.update(self._task, advance=documents, acked=self._acked)

    def show_ds14(self, before: Ds14 | None, now: Ds14) -> None:
        """The month's DS1.4 as the run lifts it: `DS1.4 2026-12 32.6 % → 41.3 %`."""
        if now.rate is None:
            return
        start = f"{percent(before.rate)} → " if before and before.rate is not None else ""
        self._progress.update(self._task, ds14=f"· DS1.4 {now.month} {start}{percent(now.rate)}")

    def stop(self) -> None:
        self._progress.stop()
