"""`backfill demo`: the whole story on embedded defaults, in one work folder, in one command.

The demo is a list of steps, each a function of the shared `DemoContext`; a step added to
`DEMO_STEPS` shows up in `make demo` with no other change.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer

from backfill.cli._app import app, out_console
from backfill.cli.dpi_cmd import print_summary, run_generation

__all__ = ["DEMO_STEPS", "DemoContext"]


@dataclass
class DemoContext:
    workdir: Path
    patients: int
    seed: int
    as_of: dt.date
    notes: dict[str, object] = field(default_factory=dict)

    @property
    def dpi_url(self) -> str:
        return f"sqlite:///{self.workdir / 'dpi.sqlite'}"


def _generate_dpi(ctx: DemoContext) -> None:
    summary = run_generation(
        ctx.dpi_url,
        patients=ctx.patients,
        seed=ctx.seed,
        as_of=ctx.as_of,
        pdf_kb=8,
        files_dir=ctx.workdir / "dpi-files",
        replace=True,
    )
    print_summary(summary)
    ctx.notes["summary"] = summary


DEMO_STEPS: list[tuple[str, Callable[[DemoContext], None]]] = [
    ("synthetic DPI", _generate_dpi),
]


@app.command("demo")
def demo_command(
    workdir: Annotated[
        Path, typer.Option("--workdir", help="Folder for the demo's databases and files.")
    ] = Path("backfill-work"),
    patients: Annotated[int, typer.Option("--patients", min=1, help="Synthetic patients.")] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the synthetic DPI.")] = 1,
) -> None:
    """Generate a synthetic DPI and run the engine on it, on embedded defaults (SQLite, mock DMP)."""
    workdir.mkdir(parents=True, exist_ok=True)
    ctx = DemoContext(
        workdir=workdir.resolve(), patients=patients, seed=seed, as_of=dt.date.today()
    )
    out_console.print(f"demo in {ctx.workdir} (as of {ctx.as_of.isoformat()})")
    for number, (title, step) in enumerate(DEMO_STEPS, start=1):
        out_console.rule(f"{number}/{len(DEMO_STEPS)} {title}")
        step(ctx)
    out_console.rule("done")
