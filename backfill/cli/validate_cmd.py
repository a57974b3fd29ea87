"""`backfill validate FILE…`: check CDA files against the CI-SIS XSD and schematron."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from backfill.cli._app import app, err_console, out_console
from backfill.cli._progress import progress
from backfill.errors import ConfigError
from cda import schematron as sch
from cda.specs import SpecsNotFound, find_specs
from cda.validate import Verdict, validate

# A CDA with its PDF inline is a few MB; anything far bigger is not a document we would send.
_MAX_FILE_BYTES = 200_000_000


def _verdict_for(path: Path, *, schematron: bool, shared_dir: str | None) -> Verdict:
    try:
        size = path.stat().st_size
        if size > _MAX_FILE_BYTES:
            return Verdict([f"the file is {size} bytes, too large for a CDA document"])
        data = path.read_bytes()
    except OSError as exc:
        return Verdict([f"cannot read the file: {exc.strerror or exc}"])
    return validate(data, schematron=schematron, shared_dir=shared_dir)


@app.command("validate")
def validate_files(
    files: Annotated[list[Path], typer.Argument(help="CDA files to check.", show_default=False)],
    schematron: Annotated[
        bool | None,
        typer.Option(
            "--schematron/--no-schematron",
            help="Run the structuration-minimale schematron (default: when saxonche is installed).",
        ),
    ] = None,
    shared_dir: Annotated[
        str | None,
        typer.Option(
            "--shared-dir",
            help="Folder holding cda-spec/ and xds-spec/ (default: BACKFILL_SHARED_DIR; make sets it to ../shared).",
        ),
    ] = None,
) -> None:
    """Check CDA R2 level-1 files: well-formed, CDA_extended.xsd, schematron. Exit 1 if any fails."""
    try:
        find_specs(shared_dir)
    except SpecsNotFound as exc:
        raise ConfigError(str(exc)) from None
    run_schematron = sch.available() if schematron is None else schematron
    if run_schematron and not sch.available():
        raise ConfigError("--schematron needs saxonche: pip install 'dmp-backfill[validation]'")
    if run_schematron:
        err_console.print("compiling the schematron (once per run, about 15 s)…")
        try:
            sch.load(shared_dir)
        except sch.SchematronUnavailable as exc:
            raise ConfigError(str(exc)) from None
    failed = 0
    with progress("validating files", total=len(files)) as done:
        for checked, path in enumerate(files, start=1):
            verdict = _verdict_for(path, schematron=run_schematron, shared_dir=shared_dir)
            name = escape(str(path))
            checks = ", ".join(verdict.checks) or "none"
            if verdict.ok:
                out_console.print(f"[green]valid[/]   {name}  ({checks})")
            else:
                failed += 1
                count = len(verdict.failures)
                out_console.print(
                    f"[bold red]INVALID[/] {name}  ({count} failure{'s' if count > 1 else ''}; checks: {checks})"
                )
                for failure in verdict.failures:
                    out_console.print(f"   - {escape(failure)}")
            for warning in verdict.warnings:
                out_console.print(f"   [yellow]warning[/] {escape(warning)}")
            done(checked)
    if not run_schematron:
        reason = "--no-schematron" if schematron is False else "install saxonche to run it"
        err_console.print(f"note: schematron not run ({reason})")
    out_console.print(f"{len(files) - failed} valid, {failed} invalid")
    if failed:
        raise typer.Exit(1)
