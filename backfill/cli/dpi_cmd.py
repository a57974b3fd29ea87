"""`backfill dpi generate` and `backfill dpi summary`: the synthetic DPI, and what a DPI holds."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from backfill.cli._app import app, err_console, out_console, state
from backfill.cli._progress import progress
from backfill.databases import describe_url, open_engine, translate_errors
from backfill.errors import BackfillError, ConfigError
from backfill.logs import get_logger
from backfill.outputs import plain
from backfill.selection.paris_time import parse_day
from connectors.dpi.summary import DpiSummary, summarize
from connectors.dpi.synthetic import GenerationError, GenerationOptions, generate
from connectors.dpi.synthetic.generator import INTERRUPTED, sqlite_speedups

__all__ = ["default_files_dir", "print_summary", "run_generation"]

dpi_app = typer.Typer(
    help="The DPI side: generate a synthetic DPI, summarise a DPI.", no_args_is_help=True
)
app.add_typer(dpi_app, name="dpi")
log = get_logger("backfill.dpi")


def default_files_dir(url: str) -> Path | None:
    """Beside a SQLite DPI file, `<name>-files/`; no `file:` documents for a server database."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None  # open_engine reports the bad URL
    if (
        parsed.get_backend_name() != "sqlite"
        or not parsed.database
        or parsed.database == ":memory:"
    ):
        return None
    path = Path(parsed.database)
    return path.with_name(path.stem + "-files")


def run_generation(
    url: str,
    *,
    patients: int,
    seed: int,
    as_of: dt.date,
    pdf_kb: int,
    files_dir: Path | None,
    replace: bool,
    live_feed_since: dt.date | None = None,
) -> DpiSummary:
    """Generate into `url` and return its summary (shared by `dpi generate` and `demo`).

    The synthetic live feed sends `[live_feed] kinds` from `live_feed_since` (default: June 2021).
    """
    settings = state.settings()
    engine = open_engine(url, "DPI")
    sqlite_speedups(engine)
    options = GenerationOptions(
        patients=patients,
        seed=seed,
        as_of=as_of,
        pdf_kb=pdf_kb,
        finess_geo=settings.establishment.finess_geo,
        files_dir=files_dir,
        replace=replace,
        live_feed_since=live_feed_since,
        live_feed_kinds=tuple(settings.live_feed.kinds),
    )
    log.info(
        "dpi.generate.start", url=describe_url(url), patients=patients, seed=seed, as_of=str(as_of)
    )
    try:
        with translate_errors("DPI", url):
            with progress("generating patients", total=patients) as done:
                report = generate(engine, options, progress=lambda n: _progress(n, done))
            summary = summarize(engine)
    except GenerationError as exc:
        raise BackfillError(str(exc)) from exc
    finally:
        engine.dispose()
    log.info(
        "dpi.generate.done",
        patients=report.patients,
        stays=report.stays,
        documents=report.documents,
        seconds=round(report.seconds, 2),
        documents_per_second=round(report.documents / report.seconds) if report.seconds else None,
    )
    out_console.print(
        f"generated {report.patients} patients, {report.stays} stays, {report.documents} documents "
        f"({report.content_bytes / 1e6:.1f} MB of PDF) in {report.seconds:.1f} s"
    )
    return summary


# Tests only: after the first batch, write the count to this file and wait for a signal, so a
# test can interrupt a generation at a known point (tests/acceptance/test_dpi_generate_safety.py).
HOLD_ENV = "BACKFILL_TEST_HOLD_GENERATION"


def _progress(patients: int, done: Callable[[int], None]) -> None:
    log.debug("dpi.generate.progress", patients=patients)
    done(patients)
    hold = os.environ.get(HOLD_ENV)
    if hold and not Path(hold).exists():
        Path(hold).write_text(str(patients), encoding="ascii")
        # Not signal.pause(): a signal landing between the write and the pause would be handled
        # only at the next one, which never comes. A short sleep always returns to the handler.
        while True:
            time.sleep(0.05)


def _table(title: str, counts: dict[str, int], total: int) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column(title.rsplit(" ", maxsplit=1)[-1])
    table.add_column("count", justify="right")
    table.add_column("%", justify="right")
    for key, count in counts.items():
        table.add_row(plain(key), str(count), f"{100 * count / total:.1f}" if total else "-")
    return table


def print_summary(summary: DpiSummary) -> None:
    if summary.generation == INTERRUPTED:
        err_console.print(
            f"warning: this synthetic DPI is {INTERRUPTED}: its generation did not finish; "
            "generate it again with --replace"
        )
    out_console.print(
        (f"DPI ({INTERRUPTED}): " if summary.generation == INTERRUPTED else "DPI: ")
        + f"{summary.patients} patients ({summary.deceased} deceased, {summary.opposed} opposed), "
        f"{summary.stays} stays, {summary.documents} document versions "
        f"({summary.sent_live} already sent by the live feed)"
    )
    out_console.print(_table("documents by kind", summary.by_kind, summary.documents))
    out_console.print(_table("documents by status", summary.by_status, summary.documents))
    out_console.print(
        _table("patients by identity status", summary.by_identity_status, summary.patients)
    )
    if summary.defects:
        out_console.print(
            _table("defects injected by defect", summary.defects, sum(summary.defects.values()))
        )


@dpi_app.command("generate")
def generate_command(
    url: Annotated[
        str,
        typer.Option(
            "--url",
            help="SQLAlchemy URL of the database to create the DPI in (required: never the configured DPI by default).",
        ),
    ],
    patients: Annotated[int, typer.Option("--patients", min=0, help="Number of patients.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same DPI, byte for byte.")] = 1,
    pdf_kb: Annotated[
        int, typer.Option("--pdf-kb", min=1, max=10_000, help="Approximate PDF size.")
    ] = 8,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Reference date YYYY-MM-DD (default: today).")
    ] = None,
    files_dir: Annotated[
        Path | None,
        typer.Option(
            "--files-dir", help="Folder for `file:` documents (default: beside a SQLite DPI)."
        ),
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Drop the DPI tables already there first.")
    ] = False,
    live_feed_since: Annotated[
        str | None,
        typer.Option(
            "--live-feed-since",
            help="Day the live DMP feed started, YYYY-MM-DD (default 2021-06-01); a recent one leaves DS1.4 low.",
        ),
    ] = None,
) -> None:
    """Create a realistic, deterministic, fictitious DPI (test INS only)."""
    target = url
    reference = _parse_date(as_of) if as_of else dt.date.today()
    feed_start = _parse_date(live_feed_since, "--live-feed-since") if live_feed_since else None
    if feed_start is not None and feed_start > reference:
        raise ConfigError(
            f"--live-feed-since {feed_start.isoformat()} is after the DPI's day "
            f"{reference.isoformat()} (--as-of): the live feed would have sent nothing"
        )
    if as_of is None:
        out_console.print(f"as of {reference.isoformat()} (pass --as-of for a reproducible DPI)")
    summary = run_generation(
        target,
        patients=patients,
        seed=seed,
        as_of=reference,
        pdf_kb=pdf_kb,
        files_dir=files_dir or default_files_dir(target),
        replace=replace,
        live_feed_since=feed_start,
    )
    print_summary(summary)


@dpi_app.command("summary")
def summary_command(
    url: Annotated[
        str | None, typer.Option("--url", help="SQLAlchemy URL of the DPI (default: dpi.url).")
    ] = None,
) -> None:
    """Count what a DPI holds, through the contract's relations."""
    target = _dpi_url(url)
    engine = open_engine(target, "DPI", must_exist=True)
    try:
        with translate_errors("DPI", target):
            print_summary(summarize(engine))
    finally:
        engine.dispose()


def _dpi_url(given: str | None) -> str:
    """--url, else the configured dpi.url; neither is a configuration error."""
    target = given or state.settings().dpi.url
    if not target:
        raise ConfigError(
            "no DPI URL: pass --url, set BACKFILL_DPI_URL, or dpi.url in backfill.toml"
        )
    return target


def _parse_date(value: str, option: str = "--as-of") -> dt.date:
    try:
        return parse_day(value)
    except ValueError as exc:
        raise ConfigError(f"{option}: {exc}") from None
