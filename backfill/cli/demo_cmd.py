"""`backfill demo`: the whole story on embedded defaults, in one work folder, in one command.

The demo is a list of steps, each a function of the shared `DemoRun`; a step added to
`DEMO_STEPS` shows up in `make demo` with no other change. Where the work folder stands between
two demos (resume or start clean) is `backfill.demo`'s business; the sending is
`backfill.pipeline.run`, as for `backfill run`.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from backfill.cli._app import app, err_console, out_console, state
from backfill.cli._progress import SendingBar
from backfill.cli.dpi_cmd import print_summary, run_generation
from backfill.cli.indicator_cmd import ds14_table, measure, months_to_show
from backfill.config import Settings
from backfill.databases import open_engine
from backfill.demo import DEMO_FAULTS, DemoFolder, DemoStart, configure_faults, held_documents
from backfill.documents import build_selected
from backfill.errors import ConfigError
from backfill.indicator import Ds14, Month, percent
from backfill.logs import configure_logging
from backfill.outputs import export_name, open_output, private_folder, write_output
from backfill.pipeline import RunSummary, run, run_blocking
from backfill.report import gather, render_html
from backfill.selection import DEFAULT_RULE, Decision, decide, load_rule
from backfill.selection.audit import AuditCounts, DecisionCsv, reason_table
from backfill.selection.paris_time import PARIS
from cda.specs import find_specs
from cda.validate import validate
from connectors.dmp_mock.process import MockProcess, MockProcessError
from connectors.dmp_mock.seeding import seed_from_dpi

__all__ = ["DEMO_STEPS", "DemoRun"]

# The demo's live feed started recently (DESIGN §10): DS1.4 then starts below the 50 % target
# and the backfill visibly lifts it; a feed running for years already scores ~75 %.
DEMO_LIVE_FEED_DAYS = 120


class DemoInterrupted(Exception):
    """The run stopped with documents left (exit 3: Ctrl-C, SIGTERM…); the next demo resumes."""

    def __init__(self, summary: RunSummary) -> None:
        super().__init__(summary.stop_reason)
        self.summary = summary


@dataclass
class DemoRun:
    folder: DemoFolder
    start: DemoStart
    export_limit: int = 20
    schematron: bool | None = None
    mock: MockProcess | None = None
    settings: Settings | None = None
    selected: list[Decision] = field(default_factory=list)
    ds14_before: Ds14 | None = None

    @property
    def as_of(self) -> dt.datetime:
        return dt.datetime.combine(self.folder.as_of, dt.time(), tzinfo=PARIS)

    def sending_settings(self) -> Settings:
        assert self.settings is not None, "the mock DMP step comes first"
        return self.settings


def _generate_dpi(demo: DemoRun) -> None:
    folder = demo.folder
    if demo.start.resumed:
        out_console.print(f"kept from the interrupted demo: {folder.dpi_url}")
        return
    summary = run_generation(
        folder.dpi_url,
        patients=folder.patients,
        seed=folder.seed,
        as_of=folder.as_of,
        pdf_kb=8,
        files_dir=folder.content_root,
        replace=True,
        live_feed_since=folder.as_of - dt.timedelta(days=DEMO_LIVE_FEED_DAYS),
    )
    print_summary(summary)


def _start_mock(demo: DemoRun) -> None:
    folder = demo.folder
    demo.mock = folder.mock(log_level=state.log_level or "WARNING")
    try:
        base = demo.mock.start()
    except MockProcessError as exc:
        raise ConfigError(str(exc)) from None
    if demo.start.resumed:
        note = "its store kept from the interrupted demo"
    else:
        engine = open_engine(folder.dpi_url, "DPI")
        try:
            seeded = seed_from_dpi(engine, base)
        finally:
            engine.dispose()
        note = f"seeded with the {seeded.get('seeded', 0)} documents the live feed sent"
    configure_faults(base)
    demo.settings = folder.settings(state.settings(), base)
    folder.write_config()
    folder.mark("ready")
    out_console.print(
        f"mock DMP on {base} (process {demo.mock.pid}, store {folder.mock_store_url}), {note}"
    )
    out_console.print(
        f"injected: {DEMO_FAULTS['latency_ms']} ms latency, "
        f"{DEMO_FAULTS['busy_ratio'] * 100:.0f} % busy, "
        f"{DEMO_FAULTS['error500_ratio'] * 100:.0f} % HTTP 500, "
        f"{DEMO_FAULTS['timeout_after_store_ratio'] * 100:.1f} % answers lost after storing "
        "(the sender retries and resends idempotently)"
    )


def _audit(demo: DemoRun) -> None:
    folder = demo.folder
    rule = load_rule(DEFAULT_RULE, state.settings().live_feed.kinds)
    counts = AuditCounts()
    engine = open_engine(folder.dpi_url, "DPI")
    try:
        with open_output(folder.root / "decisions.csv") as handle:
            writer = DecisionCsv(handle)
            stream = decide(
                engine,
                rule,
                demo.as_of,
                content_root=folder.content_root,
                environment=state.settings().dmp.environment,
            )
            for decision in counts.count(stream):
                writer.write(decision)
                if decision.selected:
                    demo.selected.append(decision)
    finally:
        engine.dispose()
    counts.write_json(folder.root / "audit.json", rule, demo.as_of)
    out_console.print(reason_table(counts, rule, demo.as_of))
    out_console.print(f"written: {folder.root / 'audit.json'}, {folder.root / 'decisions.csv'}")


def _export_sample(demo: DemoRun) -> None:
    folder = demo.folder
    cda_folder = private_folder(folder.root / "cda")
    engine = open_engine(folder.dpi_url, "DPI")
    verdicts: Counter[str] = Counter()
    try:
        chosen = demo.selected[: demo.export_limit]
        sample = [(d.document_id, d.replaces_unique_id) for d in chosen]
        hidden = {d.document_id for d in chosen if d.hide_from_legal_rep}
        for outcome in build_selected(
            engine,
            sample,
            state.settings().establishment.as_cda(),
            content_root=folder.content_root,
            hidden_from_legal_rep=hidden,
            environment=state.settings().dmp.environment,
        ):
            if outcome.built is None:
                verdicts[f"not built: {outcome.reason}"] += 1
                continue
            write_output(cda_folder / export_name(outcome.document_id), outcome.built.xml)
            verdict = validate(outcome.built.xml, schematron=demo.schematron)
            verdicts["valid (" + "+".join(verdict.checks) + ")" if verdict.ok else "INVALID"] += 1
    finally:
        engine.dispose()
    out_console.print(
        f"{sum(verdicts.values())} selected documents written as CDA to {cda_folder}: "
        + ", ".join(f"{n} {v}" for v, n in verdicts.items())
    )


def _months(settings: Settings) -> list[Ds14]:
    """The last complete month and the month to date, as `backfill indicator` shows them."""
    now = dt.datetime.now(dt.UTC)
    notes: list[str] = []
    figures = measure(settings, months_to_show(Month.of(now), now), now, notes)
    for note in notes:
        out_console.print(escape(note))
    return [f.ds14 for f in figures]


def _send(demo: DemoRun) -> None:
    """The sender itself (`backfill.pipeline.run`) on every selected document, with its ledger."""
    settings = demo.sending_settings()
    bar = SendingBar() if err_console.is_terminal else None
    summary = run_blocking(
        run(settings, mode="demo", rule=load_rule(DEFAULT_RULE), as_of=demo.as_of, progress=bar)
    )
    demo.ds14_before = summary.ds14_before
    for line in summary.lines():
        out_console.print(line, markup=False)
    if summary.exit_code == 3:  # stopped with work left (Ctrl-C, SIGTERM, a DMP that went away)
        raise DemoInterrupted(summary)
    if summary.exit_code != 0:
        err_console.print(
            f"the demo's run failed (exit {summary.exit_code}); see the lines above and "
            f"{escape(str(demo.folder.root / 'mock-dmp.log'))}"
        )
        raise typer.Exit(summary.exit_code)


def _indicator(demo: DemoRun) -> None:
    settings = demo.sending_settings()
    shown = _months(settings)
    after = shown[-1]
    out_console.print(ds14_table(shown))
    before = demo.ds14_before
    if before is not None and before.rate is not None and after.rate is not None:
        out_console.print(
            f"DS1.4 for {after.month} (to date): {percent(before.rate)} before this run, "
            f"{percent(after.rate)} after (target 50 %); a document counts from the month it "
            "reaches the DMP, so earlier months keep their figure"
        )
    write_output(
        demo.folder.indicator_file, json.dumps(after.as_json(), indent=2, ensure_ascii=False) + "\n"
    )
    out_console.print(
        f"the same figure: backfill --config {demo.folder.config_file} indicator --month {after.month}"
    )


def _report(demo: DemoRun) -> None:
    data = gather(demo.sending_settings(), dt.datetime.now(dt.UTC))
    write_output(demo.folder.report_file, render_html(data))
    for note in data.notes:
        out_console.print(escape(note))
    out_console.print(f"report written to {demo.folder.report_file}")


def _stop_mock(demo: DemoRun) -> None:
    assert demo.mock is not None
    held = held_documents(demo.mock.base_url)
    code = demo.mock.stop()
    how = "stopped cleanly" if code in (0, -signal.SIGTERM) else f"stopped with exit code {code}"
    out_console.print(
        f"the mock DMP held {len(held)} documents; {how}; "
        f"its store stays in {demo.folder.mock_store_url}"
    )


DEMO_STEPS: list[tuple[str, Callable[[DemoRun], None]]] = [
    ("synthetic DPI", _generate_dpi),
    ("the mock DMP, a real server in its own process", _start_mock),
    ("dry-run audit (rule history-5y)", _audit),
    ("a sample of selected documents as CDA files, validated", _export_sample),
    ("the backfill: every selected document to the mock DMP", _send),
    ("DS1.4 this month, with its breakdown", _indicator),
    ("the HTML report", _report),
    ("the mock DMP shut down", _stop_mock),
]


@app.command("demo")
def demo_command(
    workdir: Annotated[
        Path, typer.Option("--workdir", help="Folder for the demo's databases and files.")
    ] = Path("backfill-work"),
    patients: Annotated[int, typer.Option("--patients", min=1, help="Synthetic patients.")] = 5000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the synthetic DPI.")] = 1,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Start clean even if an interrupted demo could resume.")
    ] = False,
    rate: Annotated[
        float,
        typer.Option("--rate", min=0.1, help="Documents per second the demo's run sends, at most."),
    ] = 500.0,
    schematron: Annotated[
        bool | None,
        typer.Option(
            "--schematron/--no-schematron",
            help="Check the CDA sample with the schematron too (default: when installed).",
        ),
    ] = None,
) -> None:
    """Synthetic DPI, mock DMP, audit, the backfill, DS1.4 and the report: on embedded defaults."""
    try:
        private_folder(workdir)
    except OSError as exc:
        raise ConfigError(
            f"--workdir {workdir}: cannot be used as a folder ({exc.strerror})"
        ) from None
    find_specs()  # the mock and the sender check every document against them: say it first
    settings = state.settings()
    if state.log_level is None:  # the story is the steps' output; the log says only what went wrong
        configure_logging("WARNING", state.log_format or settings.logging.format)
    folder = DemoFolder(workdir.resolve(), patients, seed, dt.date.today(), rate)
    demo = DemoRun(folder, folder.begin(fresh=fresh), schematron=schematron)
    out_console.print(
        f"demo in {folder.root} (as of {folder.as_of.isoformat()}): {demo.start.reason}"
    )
    try:
        for number, (title, step) in enumerate(DEMO_STEPS, start=1):
            out_console.rule(f"{number}/{len(DEMO_STEPS)} {title}")
            step(demo)
    except DemoInterrupted as stopped:
        out_console.print(
            f"stopped ({stopped.summary.stop_reason}): `make demo` (or `backfill demo`) again "
            "resumes where this one stopped"
        )
        raise typer.Exit(3) from None
    finally:
        if demo.mock is not None:
            demo.mock.stop()
    folder.mark("complete")
    out_console.rule("done")
    out_console.print(
        f"next: backfill --config {folder.config_file} status | indicator | report --html FILE "
        "(docs/operations.md runs it on a real DPI)"
    )
