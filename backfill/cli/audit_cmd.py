"""`backfill audit`: the dry run — every document's decision, counted, without sending anything."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections import Counter
from pathlib import Path
from typing import Annotated

import sqlalchemy as sa
import typer

from backfill.cli._app import app, err_console, out_console, state
from backfill.cli._progress import progress
from backfill.databases import open_engine
from backfill.documents import build_selected
from backfill.errors import ConfigError, DataSourceError
from backfill.ledger import Ledger
from backfill.outputs import export_name, open_output, plain, private_folder, write_output
from backfill.selection import Window, decide, load_rule
from backfill.selection.audit import AuditCounts, DecisionCsv, reason_table
from backfill.selection.decisions import Decision
from backfill.selection.paris_time import parse_instant
from backfill.selection.worklist import Worklist
from connectors.dpi.synthetic.generator import INTERRUPTED, generation_state

__all__ = ["audit", "parse_as_of", "parse_window"]


def parse_as_of(text: str | None) -> dt.datetime:
    """`--as-of`: an ISO instant (naive = Paris wall-clock), default now."""
    if text is None:
        return dt.datetime.now(dt.UTC).replace(microsecond=0)
    try:
        return parse_instant(text)
    except ValueError as exc:
        raise ConfigError(f"--as-of: {exc}") from None


def parse_window(start: str | None, end: str | None, *, catch_up: bool) -> Window | None:
    """`--from/--to` for a catch-up rule (a bare `--to` date includes that whole day)."""
    if not catch_up:
        if start or end:
            raise ConfigError("--from/--to apply to a catch-up rule only (e.g. --rules catch-up)")
        return None
    if not start or not end:
        raise ConfigError("a catch-up rule needs --from and --to (ISO dates or date-times)")
    try:
        window = Window(parse_instant(start), parse_instant(end, end_of_day=True))
    except ValueError as exc:
        raise ConfigError(f"--from/--to: {exc}") from None
    if window.end <= window.start:
        raise ConfigError("--to must come after --from")
    return window


def export_cda(
    engine: sa.Engine, decisions: list[Decision], folder: Path, *, content_root: Path | None
) -> Counter[str]:
    """`--export-cda DIR --limit N`: the CDA of the first selected documents, one file each.

    A document that cannot be built is counted under its reason instead (nothing is written
    for it); the user asked for these files, so they are the only content written to disk. A
    file is never overwritten: one already there is counted, and kept.
    """
    private_folder(folder)
    outcomes: Counter[str] = Counter()
    wanted = [(d.document_id, d.replaces_unique_id) for d in decisions]
    hidden = {d.document_id for d in decisions if d.hide_from_legal_rep}
    settings = state.settings()
    establishment = settings.establishment.as_cda()
    for outcome in build_selected(
        engine,
        wanted,
        establishment,
        content_root=content_root,
        hidden_from_legal_rep=hidden,
        environment=settings.dmp.environment,
    ):
        if outcome.built is None:
            outcomes[f"not built ({outcome.reason})"] += 1
            continue
        try:
            write_output(
                folder / export_name(outcome.document_id), outcome.built.xml, overwrite=False
            )
        except FileExistsError:
            outcomes["not written (file already there)"] += 1
            continue
        outcomes["written"] += 1
    return outcomes


@app.command("audit")
def audit(
    rules: Annotated[
        str | None,
        typer.Option(
            "--rules", help="A rule file, or a shipped rule's name (default: [rules] file)."
        ),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Reference instant, ISO (naive = Paris time; default now)."),
    ] = None,
    window_from: Annotated[
        str | None, typer.Option("--from", help="Catch-up rules: window start (ISO).")
    ] = None,
    window_to: Annotated[
        str | None, typer.Option("--to", help="Catch-up rules: window end, excluded (ISO).")
    ] = None,
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Write the counts as JSON here.")
    ] = None,
    csv_file: Annotated[
        Path | None, typer.Option("--csv", help="Write every document's decision as CSV here.")
    ] = None,
    worklist_file: Annotated[
        Path | None,
        typer.Option(
            "--worklist", help="Write the identity worklist (patients to qualify) as CSV here."
        ),
    ] = None,
    export_dir: Annotated[
        Path | None,
        typer.Option("--export-cda", help="Write the CDA of up to --limit selected documents."),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=1, help="How many documents --export-cda writes (default 10)."),
    ] = None,
) -> None:
    """Decide every document of the DPI under a rule and count why; nothing is sent."""
    if limit is not None and export_dir is None:
        raise ConfigError("--limit applies to --export-cda only (e.g. --export-cda DIR --limit 5)")
    limit = limit or 10
    settings = state.settings()
    settings.require("dpi.url")
    assert settings.dpi.url is not None
    rule = load_rule(rules or settings.rules.file, settings.live_feed.kinds)
    instant = parse_as_of(as_of)
    window = parse_window(window_from, window_to, catch_up=rule.is_catch_up)
    for warning in rule.warnings:
        err_console.print(plain(f"warning: {warning}"))
    counts = AuditCounts()
    worklist = Worklist() if worklist_file is not None else None
    exported: list[Decision] = []
    # The ledger's facts (acknowledged by us → 4, no DMP → 15), read only: an audit never
    # creates or upgrades a ledger; none yet means no facts.
    ledger = Ledger.open_existing(settings.ledger.url)
    engine = open_engine(settings.dpi.url, "DPI", check=False, must_exist=True)
    try:
        with engine.connect() as conn:
            generation = generation_state(conn)
        stream = decide(
            engine,
            rule,
            instant,
            window=window,
            content_root=settings.dpi.content_root,
            fetch_size=settings.dpi.fetch_size,
            identity_aside=worklist is not None,
            environment=settings.dmp.environment,
            facts=ledger,
        )
        with contextlib.ExitStack() as csv_output:
            writer = (
                DecisionCsv(csv_output.enter_context(open_output(csv_file))) if csv_file else None
            )
            with progress("deciding documents") as done:
                for seen, decision in enumerate(counts.count(stream), start=1):
                    if seen % 1000 == 0:
                        done(seen)
                    if writer is not None:
                        writer.write(decision)
                    if worklist is not None:
                        worklist.add(decision)
                    if export_dir is not None and decision.selected and len(exported) < limit:
                        exported.append(decision)
        if worklist is not None and worklist_file is not None:
            with open_output(worklist_file) as handle:
                patients = worklist.write_csv(handle, engine, instant)
            err_console.print(plain(f"identity worklist: {patients} patients → {worklist_file}"))
        if export_dir is not None:
            outcomes = export_cda(
                engine, exported, export_dir, content_root=settings.dpi.content_root
            )
            summary = ", ".join(f"{n} {what}" for what, n in sorted(outcomes.items()))
            err_console.print(plain(f"CDA export to {export_dir}: {summary or 'nothing selected'}"))
    except sa.exc.SQLAlchemyError as exc:
        raise DataSourceError(
            f"the DPI database cannot be read ({settings.dpi.url.split(':')[0]}): "
            f"{type(exc).__name__}: {getattr(exc, 'orig', exc)}"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot write the audit output: {exc}") from None
    finally:
        engine.dispose()
        if ledger is not None:
            ledger.close()
    if json_file is not None:
        try:
            counts.write_json(json_file, rule, instant)
        except OSError as exc:
            raise ConfigError(f"cannot write {json_file}: {exc.strerror or exc}") from None
    out_console.print(reason_table(counts, rule, instant))
    if generation == INTERRUPTED:
        out_console.print(
            f"warning: this synthetic DPI is {INTERRUPTED}: the counts cover only the patients "
            "written before its generation stopped"
        )
