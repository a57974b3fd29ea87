"""Hostile DPI rows against the files and the console people read (issue 17, "outputs people open").

A document id or a kind can hold anything: spreadsheet formulas, path separators, rich markup,
terminal escape sequences. The files must stay private, one per document, and the console text.
"""

from __future__ import annotations

import csv
import datetime as dt
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa

from backfill.outputs import export_name
from connectors.dpi.contract import create_contract
from tests.acceptance.cli import run_backfill
from tests.integration.selection_support import author, document, insert, patient, unit

AS_OF = "2026-11-23T10:00:00+01:00"
HOSTILE_IDS = ["a/b", "a_b", "../../..", '=HYPERLINK("http://x.example/","open me")']


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def dpi(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'dpi.sqlite'}"
    engine = sa.create_engine(url)
    create_contract(engine)
    t = dt.datetime(2025, 6, 1, 10, 0)
    insert(
        engine,
        {
            "patients": [patient("P1"), patient("@P2", identity_status="VALI")],
            "units": [unit()],
            "authors": [author()],
            "documents": [
                *(document(i, "P1", t) for i in HOSTILE_IDS),
                document("D-kind", "P1", t, kind="=1+1"),
                document("D-markup", "P1", t, kind="[/nope]"),
                document("D-escape", "P1", t, kind="[bold red]x\x1b[2J\x1b]0;pwned\x07"),
                document("D-vali", "@P2", t),
            ],
        },
    )
    engine.dispose()
    return url


def _audit(tmp_path: Path, dpi: str, *args: str):
    return run_backfill(
        "audit", "--as-of", AS_OF, *args, cwd=tmp_path, env={"BACKFILL_DPI_URL": dpi}
    )


def test_csv_cells_are_never_formulas_and_files_are_private(tmp_path: Path, dpi: str) -> None:
    out = tmp_path / "out"  # does not exist yet: created 0700
    result = _audit(
        tmp_path, dpi, "--csv", str(out / "decisions.csv"), "--worklist", str(out / "work.csv"),
        "--json", str(out / "audit.json"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader((out / "decisions.csv").open(newline="")))
    cells = [cell for row in rows for cell in row.values()]
    assert not [c for c in cells if c.startswith(("=", "+", "-", "@", "\t", "\r"))]
    assert "'" + HOSTILE_IDS[3] in {row["document_id"] for row in rows}
    assert "'=1+1" in {row["kind"] for row in rows}
    worklist = list(csv.DictReader((out / "work.csv").open(newline="")))
    assert [line["ipp"] for line in worklist] == ["'@P2"]
    assert _mode(out) == 0o700
    for name in ("decisions.csv", "work.csv", "audit.json"):
        assert _mode(out / name) == 0o600, name
    assert sorted(p.name for p in out.iterdir()) == ["audit.json", "decisions.csv", "work.csv"]


def test_every_exported_document_gets_its_own_file_and_none_is_overwritten(
    tmp_path: Path, dpi: str
) -> None:
    folder = tmp_path / "cda"
    first = _audit(tmp_path, dpi, "--export-cda", str(folder), "--limit", "50")
    assert first.returncode == 0, first.stderr
    files = sorted(folder.iterdir())
    names = {p.name for p in files}
    assert {export_name(i) for i in HOSTILE_IDS} <= names
    assert len(names) == int(first.stderr.split(" written")[0].rsplit(" ", 1)[-1])
    assert not [n for n in names if n.startswith(".")]
    assert all(_mode(p) == 0o600 for p in files)
    assert _mode(folder) == 0o700
    before = {p.name: p.read_bytes() for p in files}

    second = _audit(tmp_path, dpi, "--export-cda", str(folder), "--limit", "50")
    assert second.returncode == 0, second.stderr
    assert f"{len(names)} not written (file already there)" in second.stderr
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_data_is_printed_as_text_on_the_console(tmp_path: Path, dpi: str) -> None:
    result = run_backfill("dpi", "summary", "--url", dpi, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "[/nope]" in result.stdout
    assert "[bold red]x" in result.stdout
    assert "\x1b" not in result.stdout + result.stderr
    assert "\x07" not in result.stdout + result.stderr
