"""`backfill audit` under a rule with per-kind refinements: the new reasons, and unknown codes refused."""

from __future__ import annotations

import csv
import datetime as dt
import json
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors.dpi.contract import create_contract
from tests.acceptance.cli import run_backfill
from tests.integration.selection_support import author, document, insert, patient, unit

AS_OF = "2026-11-23T10:00:00+01:00"
SPECIALIST = "G15_10/SM04"
GENERAL_PRACTICE = "G15_10/SM26"


def _audit(*args: str, cwd: Path, dpi_url: str) -> subprocess.CompletedProcess[str]:
    return run_backfill("audit", *args, cwd=cwd, env={"BACKFILL_DPI_URL": dpi_url})


@pytest.fixture
def dpi(tmp_path: Path) -> str:
    """One patient: six consultation reports, a discharge letter, an emergency report."""
    url = f"sqlite:///{tmp_path / 'dpi.sqlite'}"
    engine = sa.create_engine(url)
    create_contract(engine)

    def consult(document_id: str, month: int, **overrides: object) -> dict[str, object]:
        when = dt.datetime(2026, month, 3, 9, 0)
        return document(document_id, "P1", when, kind="CR_CONSULT", **overrides)

    insert(
        engine,
        {
            "patients": [patient("P1")],
            "units": [unit("CARDIO")],
            "authors": [
                author("SPEC", specialty_code=SPECIALIST),
                author("GP", rpps="10000000002", specialty_code=GENERAL_PRACTICE),
                # The rule's other general-practice codes: every code it names must exist.
                author("GP2", rpps="10000000003", specialty_code="G15_10/SM53"),
                author("GP3", rpps="10000000004", specialty_code="G15_10/SM54"),
            ],
            "documents": [
                consult("C10", 10, author_id="SPEC", unit_code="CARDIO"),
                consult("C09", 9, author_id="GP", unit_code="CARDIO"),  # a GP's: not relevant
                consult("C08", 8, author_id="SPEC", unit_code="CARDIO", status="draft"),
                consult("C07", 7, author_id="SPEC", unit_code="CARDIO"),
                consult("C06", 6, author_id="SPEC", unit_code="CARDIO"),
                consult("C05", 5, author_id="SPEC", unit_code="CARDIO"),  # the fourth: beyond
                consult("C04", 4, author_id="SPEC", unit_code="CARDIO"),  # beyond
                document(
                    "OLD", "P1", dt.datetime(2023, 6, 1, 9), kind="CR_CONSULT", author_id="SPEC"
                ),  # three years old: beyond the consultations' 2 years
                document("LDL", "P1", dt.datetime(2022, 6, 1, 9), kind="LDL", author_id="SPEC"),
                document("URG", "P1", dt.datetime(2026, 2, 1, 9), kind="CR_URG", author_id="SPEC"),
            ],
        },
    )
    engine.dispose()
    return url


def test_audit_shows_not_relevant_and_beyond_kind_limit(tmp_path: Path, dpi: str) -> None:
    out, decisions = tmp_path / "audit.json", tmp_path / "decisions.csv"
    result = _audit(
        "--rules", "history-5y-focused", "--as-of", AS_OF, "--json", str(out),
        "--csv", str(decisions), cwd=tmp_path, dpi_url=dpi,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    assert report["rule"] == "history-5y-focused"
    assert list(report["excluded"])[-3:-1] == ["not_relevant", "beyond_kind_limit"]
    assert report["selected"] == 4
    assert report["excluded"]["not_relevant"] == 1
    assert report["excluded"]["beyond_kind_limit"] == 2
    with decisions.open() as handle:
        by_id = {row["document_id"]: row["decision"] for row in csv.DictReader(handle)}
    assert by_id == {
        "C10": "selected",
        "C09": "not_relevant",
        "C08": "not_validated",  # a draft takes no place among the three
        "C07": "selected",
        "C06": "selected",
        "C05": "beyond_kind_limit",
        "C04": "beyond_kind_limit",
        "OLD": "older_than_depth",
        "LDL": "selected",  # discharge letters keep their 5 years
        "URG": "kind_not_selected",
    }
    table = " ".join(result.stdout.split())
    assert "30 │ not_relevant │ 1" in table
    assert "31 │ beyond_kind_limit │ 2" in table


def test_a_filter_naming_a_code_the_dpi_lacks_is_refused(tmp_path: Path, dpi: str) -> None:
    rule = tmp_path / "mine.toml"
    rule.write_text(
        'name = "mine"\nkinds = ["CR_CONSULT"]\ndepth_years = 5\n'
        '[per_kind.CR_CONSULT]\nunits = ["CARDIO", "CARDO"]\n'
        'exclude_specialties = ["G15_10/SM99"]\n'
    )
    result = _audit("--rules", str(rule), "--as-of", AS_OF, cwd=tmp_path, dpi_url=dpi)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    message = " ".join(result.stderr.split())
    assert f"{rule}: names codes this DPI does not know" in message
    assert "per_kind.CR_CONSULT.units[1]: unknown unit 'CARDO'" in message
    assert "the DPI has: CARDIO" in message
    assert "per_kind.CR_CONSULT.exclude_specialties[0]: unknown specialty 'G15_10/SM99'" in message
    # A run stops at its start, before the ledger records anything.
    config = tmp_path / "backfill.toml"
    config.write_text(f'[rules]\nfile = "{rule}"\n')
    result = run_backfill(
        "run", "--dry-run", cwd=tmp_path,
        env={"BACKFILL_DPI_URL": dpi, "BACKFILL_LEDGER_URL": f"sqlite:///{tmp_path / 'l.db'}"},
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "per_kind.CR_CONSULT.units[1]" in result.stderr
    assert not (tmp_path / "l.db").exists()
