"""`backfill audit`: the contract JSON and CSV, the worklist, the terminal table, and clear errors."""

from __future__ import annotations

import csv
import datetime as dt
import json
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from backfill.outputs import export_name
from backfill.selection.reasons import Reason
from connectors.dpi.contract import create_contract
from tests.acceptance.cli import run_backfill
from tests.integration.selection_support import author, document, insert, patient, stay, unit

AS_OF = "2026-11-23T10:00:00+01:00"


def _audit(*args: str, cwd: Path, dpi_url: str | None) -> subprocess.CompletedProcess[str]:
    return run_backfill(
        "audit", *args, cwd=cwd, env={"BACKFILL_DPI_URL": dpi_url} if dpi_url else None
    )


@pytest.fixture
def dpi(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'dpi.sqlite'}"
    engine = sa.create_engine(url)
    create_contract(engine)
    t = dt.datetime(2025, 6, 1, 10, 0)
    insert(
        engine,
        {
            "patients": [
                patient("P1"),
                patient("P2", identity_status="VALI"),
                patient("P3", birth_place_code=None),
                patient("P4", identity_status="PROV", identity_fictitious=True),
            ],
            "units": [unit()],
            "authors": [author()],
            "stays": [
                stay("S1", "P2", dt.datetime(2026, 12, 1, 8), status="planned"),
                stay("S2", "P3", dt.datetime(2026, 10, 1, 8)),
            ],
            "documents": [
                document("D1", "P1", t),
                document("D2", "P1", t, kind="CR_BIO"),
                document("D3", "P1", t, set_id="D1", version=2, status="draft"),
                document("D4", "P2", t),
                document("D5", "P2", t, kind="LDL"),
                document("D6", "P3", t),
                document("D7", "P4", t),
            ],
        },
    )
    engine.dispose()
    return url


def test_audit_writes_the_contract_json_csv_and_worklist(tmp_path: Path, dpi: str) -> None:
    out = tmp_path / "audit.json"
    decisions = tmp_path / "decisions.csv"
    worklist = tmp_path / "worklist.csv"
    result = _audit(
        "--as-of", AS_OF, "--json", str(out), "--csv", str(decisions),
        "--worklist", str(worklist), cwd=tmp_path, dpi_url=dpi,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    # The DESIGN §11 keys first, then the extensions (minors, warnings).
    assert list(report) == [
        "as_of",
        "rule",
        "total",
        "selected",
        "excluded",
        "by_kind",
        "minors",
        "warnings",
    ]
    assert report["rule"] == "history-5y"
    assert report["total"] == 7
    assert report["selected"] == 1
    assert list(report["excluded"]) == [r.value for r in Reason]
    assert report["excluded"]["kind_not_selected"] == 1
    assert report["excluded"]["not_validated"] == 1
    assert report["excluded"]["identity_not_qualified"] == 3
    assert report["excluded"]["ins_traits_incomplete"] == 1
    assert report["excluded"]["future_dated"] == 0
    assert report["by_kind"]["CRH"] == {"selected": 1, "excluded": 4}
    assert dt.datetime.fromisoformat(report["as_of"]) == dt.datetime.fromisoformat(AS_OF)

    with decisions.open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == [
        "document_id",
        "set_id",
        "version",
        "ipp",
        "kind",
        "created_at",
        "decision",
    ]
    by_id = {row["document_id"]: row["decision"] for row in rows}
    assert by_id == {
        "D1": "selected",
        "D2": "kind_not_selected",
        "D3": "not_validated",
        "D4": "identity_not_qualified",
        "D5": "identity_not_qualified",
        "D6": "ins_traits_incomplete",
        "D7": "identity_not_qualified",
    }

    with worklist.open() as handle:
        lines = list(csv.DictReader(handle))
    # P2 (planned stay) before P3 (past stay); P4 is fictitious, never on the worklist.
    assert [(x["ipp"], x["blocking_reason"], x["documents"]) for x in lines] == [
        ("P2", "identity_not_qualified", "2"),
        ("P3", "ins_traits_incomplete", "1"),
    ]
    assert lines[0]["next_stay"].startswith("2026-12-01")
    assert "NOM" not in worklist.read_text()  # identifiers only

    assert "selected" in result.stdout
    assert "identity_not_qualified" in result.stdout
    assert "42.9" in result.stdout  # 3 of 7


def test_shipped_rule_by_name_and_catch_up_window(tmp_path: Path, dpi: str) -> None:
    out = tmp_path / "a.json"
    result = _audit(
        "--rules", "catch-up", "--from", "2025-06-01", "--to", "2025-06-01",
        "--as-of", AS_OF, "--json", str(out), cwd=tmp_path, dpi_url=dpi,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # D1 and the biology report D2: catch-up takes what the live feed sends (issue 14).
    assert json.loads(out.read_text())["selected"] == 2
    result = _audit(
        "--rules", "catch-up", "--from", "2025-06-02", "--to", "2025-07-01",
        "--as-of", AS_OF, "--json", str(out), cwd=tmp_path, dpi_url=dpi,
    )  # fmt: skip
    assert json.loads(out.read_text())["selected"] == 0


def test_errors_are_one_line_with_exit_code_2(tmp_path: Path, dpi: str) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nkinds = ["LDL", "XRAY"]\ndepth_years = 5\n')
    result = _audit("--rules", str(bad), cwd=tmp_path, dpi_url=dpi)
    assert result.returncode == 2
    assert "bad.toml" in result.stderr
    assert "kinds[1]" in result.stderr
    assert "Traceback" not in result.stderr

    result = _audit("--rules", "catch-up", cwd=tmp_path, dpi_url=dpi)
    assert result.returncode == 2
    assert "--from" in result.stderr

    result = _audit(cwd=tmp_path, dpi_url=None)
    assert result.returncode == 2
    assert "BACKFILL_DPI_URL" in result.stderr

    result = _audit("--as-of", "yesterday", cwd=tmp_path, dpi_url=dpi)
    assert result.returncode == 2
    assert "--as-of" in result.stderr


def test_export_cda_writes_the_selected_documents(tmp_path: Path, dpi: str) -> None:
    folder = tmp_path / "cda"
    result = _audit(
        "--as-of", AS_OF, "--export-cda", str(folder), "--limit", "5", cwd=tmp_path, dpi_url=dpi
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    files = sorted(folder.iterdir())
    assert [p.name for p in files] == [export_name("D1")]
    assert b"ClinicalDocument" in files[0].read_bytes()
    assert "1 written" in result.stderr


def test_a_mistyped_sqlite_path_is_named_and_not_created(tmp_path: Path) -> None:
    result = _audit(cwd=tmp_path, dpi_url="sqlite:///typo.sqlite")
    assert result.returncode == 1
    assert "the DPI database file typo.sqlite does not exist" in result.stderr
    assert not (tmp_path / "typo.sqlite").exists()
