"""`backfill report --html FILE`: the page a project lead forwards (DS1.4, audit, backlog, bonus)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from backfill import bonus as money
from backfill.cli._app import app, err_console, out_console, state
from backfill.cli.indicator_cmd import ActivityOption, WindowOption
from backfill.errors import ConfigError
from backfill.outputs import write_output
from backfill.report import gather, render_html

__all__ = ["report"]


@app.command("report")
def report(
    html_file: Annotated[
        Path, typer.Option("--html", help="Write the self-contained HTML page here.")
    ],
    activity: ActivityOption = None,
    window: WindowOption = None,
    months: Annotated[
        int, typer.Option("--months", min=2, max=36, help="Months of DS1.4 to chart.")
    ] = 12,
) -> None:
    """One HTML page: DS1.4 by month, the audit's reasons, backlog and runs, DS1.1/DS1.2, the bonus."""
    settings = state.settings()
    if activity is not None:
        money.category_of(activity)
    chosen = money.window_named(window).name if window is not None else None
    if activity is not None or chosen is not None:
        indicator = settings.indicator.model_copy(
            update={
                "activity": activity if activity is not None else settings.indicator.activity,
                "window": chosen or settings.indicator.window,
            }
        )
        settings = settings.model_copy(update={"indicator": indicator})
    data = gather(settings, dt.datetime.now(dt.UTC), months=months)
    try:
        write_output(html_file, render_html(data))
    except OSError as exc:
        raise ConfigError(f"cannot write {html_file}: {exc.strerror or exc}") from None
    for note in data.notes:
        err_console.print(escape(note))
    out_console.print(f"report written to {escape(str(html_file))}")
