"""`backfill demo`: the whole story on embedded defaults, in one work folder, in one command.

The demo is a list of steps, each a function of the shared `DemoContext`; a step added to
`DEMO_STEPS` shows up in `make demo` with no other change.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import httpx
import typer

from backfill.cli._app import app, out_console, state
from backfill.cli.dpi_cmd import print_summary, run_generation
from backfill.databases import open_engine
from backfill.dmp_session import dmp_client
from backfill.documents import build_selected
from backfill.errors import ConfigError
from backfill.outputs import export_name, open_output, private_folder, write_output
from backfill.selection import DEFAULT_RULE, Decision, decide, load_rule
from backfill.selection.audit import AuditCounts, DecisionCsv, reason_table
from backfill.selection.paris_time import PARIS
from cda.build import BuiltDocument
from cda.validate import validate
from connectors.dmp_mock.app import MockConfig
from connectors.dmp_mock.server import MockServer

__all__ = ["DEMO_STEPS", "DemoContext"]


@dataclass
class DemoContext:
    workdir: Path
    patients: int
    seed: int
    as_of: dt.date
    export_limit: int = 20
    schematron: bool | None = None
    send_patients: int = 200
    notes: dict[str, object] = field(default_factory=dict)

    @property
    def dpi_url(self) -> str:
        return f"sqlite:///{self.workdir / 'dpi.sqlite'}"

    @property
    def content_root(self) -> Path:
        """The synthetic DPI's share: its `file:` documents are read from here only."""
        return self.workdir / "dpi-files"


def _generate_dpi(ctx: DemoContext) -> None:
    summary = run_generation(
        ctx.dpi_url,
        patients=ctx.patients,
        seed=ctx.seed,
        as_of=ctx.as_of,
        pdf_kb=8,
        files_dir=ctx.content_root,
        replace=True,
    )
    print_summary(summary)
    ctx.notes["summary"] = summary


def _audit(ctx: DemoContext) -> None:
    rule = load_rule(DEFAULT_RULE)
    as_of = dt.datetime.combine(ctx.as_of, dt.time(), tzinfo=PARIS)
    counts = AuditCounts()
    selected: list[Decision] = []
    engine = open_engine(ctx.dpi_url, "DPI")
    try:
        with open_output(ctx.workdir / "decisions.csv") as handle:
            writer = DecisionCsv(handle)
            stream = decide(
                engine,
                rule,
                as_of,
                content_root=ctx.content_root,
                environment=state.settings().dmp.environment,
            )
            for decision in counts.count(stream):
                writer.write(decision)
                if decision.selected:
                    selected.append(decision)
    finally:
        engine.dispose()
    counts.write_json(ctx.workdir / "audit.json", rule, as_of)
    out_console.print(reason_table(counts, rule, as_of))
    out_console.print(f"written: {ctx.workdir / 'audit.json'}, {ctx.workdir / 'decisions.csv'}")
    ctx.notes["selected"] = selected


def _export_sample(ctx: DemoContext) -> None:
    selected: list[Decision] = ctx.notes["selected"]  # type: ignore[assignment]
    folder = private_folder(ctx.workdir / "cda")
    engine = open_engine(ctx.dpi_url, "DPI")
    verdicts: Counter[str] = Counter()
    try:
        chosen = selected[: ctx.export_limit]
        sample = [(d.document_id, d.replaces_unique_id) for d in chosen]
        hidden = {d.document_id for d in chosen if d.hide_from_legal_rep}
        for outcome in build_selected(
            engine,
            sample,
            state.settings().establishment.as_cda(),
            content_root=ctx.content_root,
            hidden_from_legal_rep=hidden,
            environment=state.settings().dmp.environment,
        ):
            if outcome.built is None:
                verdicts[f"not built: {outcome.reason}"] += 1
                continue
            write_output(folder / export_name(outcome.document_id), outcome.built.xml)
            verdict = validate(outcome.built.xml, schematron=ctx.schematron)
            verdicts["valid (" + "+".join(verdict.checks) + ")" if verdict.ok else "INVALID"] += 1
    finally:
        engine.dispose()
    out_console.print(
        f"{sum(verdicts.values())} selected documents written as CDA to {folder}: "
        + ", ".join(f"{n} {v}" for v, n in verdicts.items())
    )


def _send_to_mock(ctx: DemoContext) -> None:
    selected: list[Decision] = ctx.notes["selected"]  # type: ignore[assignment]
    by_patient: dict[str, list[Decision]] = {}
    for decision in selected:
        by_patient.setdefault(decision.ipp, []).append(decision)
    patients = list(by_patient)[: ctx.send_patients]
    wanted = [d for ipp in patients for d in by_patient[ipp]]
    replacements = [d for d in wanted if d.replaces_unique_id]
    wanted = [d for d in wanted if not d.replaces_unique_id]
    settings = state.settings()
    establishment = settings.establishment.as_cda()
    built: dict[str, list[BuiltDocument]] = {}
    outcomes: Counter[str] = Counter()
    engine = open_engine(ctx.dpi_url, "DPI")
    try:
        for outcome in build_selected(
            engine,
            [(d.document_id, None) for d in wanted],
            establishment,
            content_root=ctx.content_root,
            hidden_from_legal_rep={d.document_id for d in wanted if d.hide_from_legal_rep},
            environment=settings.dmp.environment,
        ):
            if outcome.built is None:
                outcomes[f"not built: {outcome.reason}"] += 1
            else:
                built.setdefault(outcome.ipp or "", []).append(outcome.built)
    finally:
        engine.dispose()
    store = ctx.workdir / "mock-dmp.sqlite"
    store.unlink(missing_ok=True)
    started = time.perf_counter()
    with MockServer(MockConfig(db_url=f"sqlite:///{store}")) as mock:
        client = dmp_client(settings, url=mock.services_url)
        try:
            for documents in built.values():
                result = client.submit(
                    documents[0].entry.patient_id, [(d.entry, d.xml) for d in documents]
                )
                outcomes[
                    f"{result.kind.value}"
                    + (f" ({', '.join(sorted(set(result.codes)))})" if result.codes else "")
                ] += len(documents)
        finally:
            client.close()
        stored = len(httpx.get(mock.base_url + "/_mock/documents").json())
    elapsed = time.perf_counter() - started
    out_console.print(
        f"{len(patients)} patients, {sum(len(v) for v in built.values())} documents sent to a mock DMP "
        f"over ITI-41 in {elapsed:.1f} s; the mock holds {stored}: "
        + ", ".join(f"{n} {k}" for k, n in sorted(outcomes.items()))
    )
    if replacements:
        out_console.print(
            f"{len(replacements)} selected documents replace a version the live feed sent; they "
            "wait for the sender, which looks up the DMP's entry first."
        )


DEMO_STEPS: list[tuple[str, Callable[[DemoContext], None]]] = [
    ("synthetic DPI", _generate_dpi),
    ("dry-run audit (rule history-5y)", _audit),
    ("a sample of selected documents as CDA files, validated", _export_sample),
    ("selected documents of the first patients sent to a mock DMP", _send_to_mock),
]


@app.command("demo")
def demo_command(
    workdir: Annotated[
        Path, typer.Option("--workdir", help="Folder for the demo's databases and files.")
    ] = Path("backfill-work"),
    patients: Annotated[int, typer.Option("--patients", min=1, help="Synthetic patients.")] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the synthetic DPI.")] = 1,
    send_patients: Annotated[
        int,
        typer.Option("--send-patients", min=0, help="Patients whose documents go to the mock DMP."),
    ] = 200,
    schematron: Annotated[
        bool | None,
        typer.Option(
            "--schematron/--no-schematron",
            help="Check the CDA sample with the schematron too (default: when installed).",
        ),
    ] = None,
) -> None:
    """Synthetic DPI, dry-run audit, CDA sample, sending to a mock DMP: on embedded defaults."""
    try:
        private_folder(workdir)
    except OSError as exc:
        raise ConfigError(
            f"--workdir {workdir}: cannot be used as a folder ({exc.strerror})"
        ) from None
    ctx = DemoContext(
        workdir=workdir.resolve(),
        patients=patients,
        seed=seed,
        as_of=dt.date.today(),
        send_patients=send_patients,
        schematron=schematron,
    )
    out_console.print(f"demo in {ctx.workdir} (as of {ctx.as_of.isoformat()})")
    for number, (title, step) in enumerate(DEMO_STEPS, start=1):
        out_console.rule(f"{number}/{len(DEMO_STEPS)} {title}")
        step(ctx)
    out_console.rule("done")
