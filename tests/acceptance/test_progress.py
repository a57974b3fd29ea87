"""Progress of long work shows on a terminal, and off a terminal nothing but the summary does."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.acceptance.cli import generate_dpi, run_backfill

TERMINAL = {
    "TTY_COMPATIBLE": "1",
    "TTY_INTERACTIVE": "1",
}  # rich: stderr is an interactive terminal
NO_TERMINAL = {"TTY_COMPATIBLE": "0", "TTY_INTERACTIVE": "0"}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("progress")
    generate_dpi(folder)
    export = run_backfill(
        "audit", "--as-of", "2026-11-01", "--export-cda", "cda", "--limit", "2", cwd=folder,
        env={"BACKFILL_DPI_URL": "sqlite:///dpi.sqlite",
             "BACKFILL_DPI_CONTENT_ROOT": str(folder / "dpi-files")},
    )  # fmt: skip
    assert export.returncode == 0, export.stderr
    return folder


COMMANDS = {
    "dpi generate": (
        ["dpi", "generate", "--url", "sqlite:///again.sqlite", "--patients", "20",
         "--as-of", "2026-11-01", "--replace"],
        "generating patients",
    ),
    "audit": (["audit", "--as-of", "2026-11-01"], "deciding documents"),
    "validate": (["validate", "--no-schematron", "cda"], "validating files"),
}  # fmt: skip


@pytest.mark.parametrize("command", list(COMMANDS))
def test_progress_on_a_terminal_only(workdir: Path, command: str) -> None:
    args, label = COMMANDS[command]
    env = {"BACKFILL_DPI_URL": "sqlite:///dpi.sqlite"}
    if command == "validate":
        args = [*args[:-1], *sorted(str(p) for p in (workdir / "cda").iterdir())]
    shown = run_backfill(*args, cwd=workdir, env={**env, **TERMINAL})
    assert shown.returncode == 0, shown.stderr
    assert label in shown.stderr
    quiet = run_backfill(*args, cwd=workdir, env={**env, **NO_TERMINAL})
    assert quiet.returncode == 0, quiet.stderr
    assert label not in quiet.stderr
    assert "\x1b[" not in quiet.stderr, "no terminal control sequences off a terminal"
