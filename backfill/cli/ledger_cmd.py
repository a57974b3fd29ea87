"""`backfill status` and `backfill retry --rejected`: what the ledger holds, and putting rejected
documents back after a fix. Both read an existing ledger only; neither creates one."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from backfill.cli._app import app, out_console, state
from backfill.databases import describe_url
from backfill.errors import ConfigError
from backfill.ledger import DocState, Ledger, LedgerStatus
from backfill.outputs import plain, write_output
from backfill.selection.paris_time import shown

__all__ = ["retry", "status"]


def _when(value: object) -> str:
    """A ledger instant as people read it: Paris time with its offset."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return shown(value)
    return value.isoformat(timespec="seconds") if hasattr(value, "isoformat") else "—"


def _tables(where: str, report: LedgerStatus) -> list[Table | str]:
    total = sum(report.counts.values())
    counts = Table(
        title=plain(f"ledger {where}: {total} document{'' if total == 1 else 's'}"),
        title_justify="left",
    )
    counts.add_column("state")
    counts.add_column("documents", justify="right")
    for doc_state in DocState:
        counts.add_row(doc_state.value, str(report.counts.get(doc_state, 0)))
    shown: list[Table | str] = [counts]
    oldest = report.oldest_waiting
    if oldest is None:
        shown.append("nothing waiting: every selected document is acked or rejected")
    else:
        shown.append(
            f"oldest waiting: {oldest.document_id} (patient {oldest.ipp}), selected "
            f"{_when(oldest.selected_at)}, {oldest.state.value}: {oldest.why()}"
        )
    runs = Table(title="recent runs", title_justify="left")
    for column in ("run", "mode", "rule", "started", "ended", "exit", "host", "pid"):
        runs.add_column(column)
    for run in report.runs:
        runs.add_row(
            str(run.run_id),
            plain(run.mode),
            plain(run.rule_name or "—"),
            _when(run.started_at),
            _when(run.ended_at) if run.ended_at else "not ended (running, or killed)",
            "—" if run.exit_status is None else str(run.exit_status),
            plain(run.host),
            str(run.pid),
        )
    shown.append(runs if report.runs else "no run yet")
    return shown


@app.command("status")
def status(
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Also write the status as JSON here.")
    ] = None,
) -> None:
    """Documents by state, the oldest one still waiting and why, and the recent runs."""
    settings = state.settings()
    where = describe_url(settings.ledger.url)
    ledger = Ledger.open_existing(settings.ledger.url)
    if ledger is None:
        report = LedgerStatus(dict.fromkeys(DocState, 0), None, [])
        out_console.print(plain(f"no ledger at {where} yet: nothing has run against it"))
    else:
        with ledger:
            report = ledger.status()
        for part in _tables(where, report):
            out_console.print(plain(part) if isinstance(part, str) else part)
    if json_file is not None:
        data = {"ledger": where, "exists": ledger is not None, **report.as_json()}
        try:
            write_output(json_file, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        except OSError as exc:
            raise ConfigError(f"cannot write {json_file}: {exc.strerror or exc}") from None


@app.command("retry")
def retry(
    rejected: Annotated[
        bool, typer.Option("--rejected", help="Put rejected documents back to be sent again.")
    ] = False,
    code: Annotated[
        str | None,
        typer.Option(
            "--code", help="Only those rejected with this code (e.g. XDSRegistryMetadataError)."
        ),
    ] = None,
) -> None:
    """Put rejected documents back (after a fix) for the next run; recorded in the attempt log."""
    if not rejected:
        raise typer.BadParameter("say what to retry: --rejected", param_hint="--rejected")
    settings = state.settings()
    with Ledger.open_required(settings.ledger.url) as ledger:
        run_id, count = ledger.retry_rejected(settings.run.lock_file, code)
    which = f" rejected with {code}" if code else " rejected"
    out_console.print(
        plain(
            f"{count} document{'' if count == 1 else 's'}{which} put back to selected (run {run_id}); the next run sends them"
        )
    )
