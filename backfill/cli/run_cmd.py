"""`backfill run`, `backfill catch-up`, `backfill send`: thin shells over `backfill.pipeline.run`.

Each parses its options, loads the rule, runs the sender on an event loop, prints the summary
and exits with the run's code (DESIGN §11: 0 done, 1 failure, 2 configuration or
authentication, 3 stopped with work left). A rich progress bar shows on a terminal; otherwise
the sender's JSON log lines are the record.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from backfill.cli._app import app, err_console, out_console, state
from backfill.cli._progress import SendingBar
from backfill.cli.audit_cmd import parse_as_of, parse_window
from backfill.errors import ConfigError
from backfill.pipeline import RunSummary, run, run_blocking, until_instant
from backfill.selection import Rule, Window, load_rule

__all__ = ["catch_up_command", "run_command", "send_command"]


def _go(
    *,
    mode: str,
    rule: Rule,
    as_of: dt.datetime,
    window: Window | None = None,
    ipps: list[str] | None = None,
    document_ids: list[str] | None = None,
    dry_run: bool = False,
    until: str | None = None,
    max_documents: int | None = None,
    visiting: bool = False,
    lookahead_days: int | None = None,
) -> None:
    settings = state.settings()
    deadline = until_instant(until, dt.datetime.now(dt.UTC)) if until else None
    progress = SendingBar() if err_console.is_terminal and not dry_run else None
    summary: RunSummary = run_blocking(
        run(
            settings,
            mode=mode,
            rule=rule,
            as_of=as_of,
            window=window,
            ipps=ipps,
            document_ids=document_ids,
            dry_run=dry_run,
            until=deadline,
            max_documents=max_documents,
            visiting=visiting,
            lookahead_days=lookahead_days,
            progress=progress,
        )
    )
    for line in summary.lines():
        out_console.print(line, markup=False)
    raise typer.Exit(summary.exit_code)


@app.command("run")
def run_command(
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Select, read, build and validate; send and record nothing."
        ),
    ] = False,
    until: Annotated[
        str | None,
        typer.Option("--until", help="Stop taking patients at this Paris time (HH:MM); exit 3."),
    ] = None,
    max_documents: Annotated[
        int | None,
        typer.Option("--max-documents", min=1, help="Send at most this many documents; exit 3."),
    ] = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Reference instant (ISO; default now).")
    ] = None,
    visiting: Annotated[
        bool,
        typer.Option(
            "--visiting",
            help="Only patients with a stay in progress, admitted today, or planned within "
            "--lookahead-days (the run scheduled every few hours around new visits).",
        ),
    ] = False,
    lookahead_days: Annotated[
        int | None,
        typer.Option(
            "--lookahead-days",
            min=0,
            max=365,
            help="With --visiting: days ahead for planned stays (default: [run] lookahead_days).",
        ),
    ] = None,
) -> None:
    """Send what the configured rule selects to the DMP (the nightly run)."""
    settings = state.settings()
    if lookahead_days is not None and not visiting:
        raise ConfigError("--lookahead-days goes with --visiting")
    _go(
        mode="nightly",
        rule=load_rule(settings.rules.file, settings.live_feed.kinds),
        as_of=parse_as_of(as_of),
        dry_run=dry_run,
        until=until,
        max_documents=max_documents,
        visiting=visiting,
        lookahead_days=lookahead_days,
    )


@app.command("catch-up")
def catch_up_command(
    start: Annotated[str, typer.Option("--from", help="Window start (ISO date or date-time).")],
    end: Annotated[str, typer.Option("--to", help="Window end (ISO; a bare date includes it).")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would go; send nothing.")
    ] = False,
    until: Annotated[
        str | None, typer.Option("--until", help="Stop at this Paris time (HH:MM); exit 3.")
    ] = None,
    max_documents: Annotated[
        int | None, typer.Option("--max-documents", min=1, help="At most this many documents.")
    ] = None,
) -> None:
    """After an outage of the live feed: send what it missed in a window (rule catch-up)."""
    rule = load_rule("catch-up", state.settings().live_feed.kinds)
    _go(
        mode="catch-up",
        rule=rule,
        as_of=parse_as_of(None),
        window=parse_window(start, end, catch_up=True),
        dry_run=dry_run,
        until=until,
        max_documents=max_documents,
    )


@app.command("send")
def send_command(
    ipp: Annotated[list[str], typer.Option("--ipp", help="A patient's IPP (repeat for several).")],
    document: Annotated[
        list[str] | None,
        typer.Option("--document", help="Only this document version (repeat for several)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would go; send nothing.")
    ] = False,
) -> None:
    """Manual mode: send these patients' selected documents, through the same rules and ledger."""
    settings = state.settings()
    _go(
        mode="manual",
        rule=load_rule(settings.rules.file, settings.live_feed.kinds),
        as_of=parse_as_of(None),
        ipps=ipp,
        document_ids=document or None,
        dry_run=dry_run,
    )
