"""`backfill report --html`: one self-contained page whose charts carry their figures, on both backends."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from backfill.config import Settings
from backfill.ledger import DocState, Ledger
from backfill.report import gather, render_html
from connectors.dpi.contract import create_contract
from tests.acceptance.cli import run_backfill
from tests.conftest import Database
from tests.integration.ds14_support import EXPECTED_NOVEMBER, hand_dpi
from tests.integration.ledger_support import drive
from tests.integration.selection_support import insert

NOW = dt.datetime(2026, 12, 10, 12, tzinfo=dt.UTC)
NAMESPACES = {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}


def _dpi_and_ledger(database: Database, tmp_path: Path) -> Settings:
    engine = database.engine()
    create_contract(engine)
    rows, acked = hand_dpi()
    insert(engine, rows)
    engine.dispose()
    ledger_url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    # one run on the evening of 30 November (UTC; Paris is an hour ahead): two acks before the
    # month ends at 23:00 UTC, the third after it
    times = [
        dt.datetime(2026, 11, 30, h, m, tzinfo=dt.UTC) for h, m in ((22, 10), (23, 30), (22, 20))
    ]
    with Ledger.open(
        ledger_url, clock=lambda: dt.datetime(2026, 11, 30, 22, tzinfo=dt.UTC)
    ) as ledger:
        run_id = ledger.start_run(mode="history")
        for (document_id, _), when in zip(acked, times, strict=True):
            ledger.clock = lambda when=when: when
            drive(ledger, run_id, document_id, DocState.ACKED, ipp=document_id)
        drive(ledger, run_id, "WAITING", DocState.SELECTED, ipp="P3")
        ledger.clock = lambda: dt.datetime(2026, 11, 30, 23, 40, tzinfo=dt.UTC)
        ledger.finish_run(run_id, exit_status=0, counts={"acked": 3})
    return Settings(
        dpi={"url": database.url},
        ledger={"url": ledger_url},
        indicator={"activity": 7000, "window": "S2-2022"},
    )


def external_references(page: str) -> list[str]:
    """Every reference in the page that would leave it (namespace names are not fetched)."""
    found = []
    for match in re.finditer(
        r"""(?:href|src)\s*=\s*["']([^"']*)["']|url\(([^)]*)\)|@import""", page
    ):
        target = (match.group(1) or match.group(2) or match.group(0)).strip("'\" ")
        if not target.startswith("#"):
            found.append(target)
    for url in re.findall(r"[a-z]+://[^\s\"'<>)]+", page):
        if url not in NAMESPACES:
            found.append(url)
    return found


def test_the_page_carries_its_figures_and_nothing_external(
    database: Database, tmp_path: Path
) -> None:
    data = gather(_dpi_and_ledger(database, tmp_path), NOW)
    page = render_html(data)

    assert external_references(page) == []
    assert "<script src" not in page
    assert "<link" not in page
    block = re.search(
        r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S
    )
    assert block is not None
    payload = json.loads(block.group(1))
    november = next(m for m in payload["ds14_by_month"] if m["month"] == "2026-11")
    assert november["breakdown"] == EXPECTED_NOVEMBER  # the ledger's acks are counted
    assert [m["month"] for m in payload["ds14_by_month"]][-2:] == ["2026-11", "2026-12"]
    assert payload["ds14_by_month"][-1]["month_to_date"] is True
    assert payload["bonus"] == {"activity": 7000, "window": "S2-2022", "d1": 21600.0,
                                "history_bonus": 2160.0, "payable": False}  # fmt: skip
    assert payload["ledger"]["counts"]["acked"] == 3
    # the charts: inline SVG, each with its series as a data attribute
    assert page.count("<svg") == 2
    series = re.search(r'id="chart-ds14" data-series="([^"]*)"', page)
    assert series is not None
    rates = {p["month"]: p["rate"] for p in json.loads(series.group(1).replace("&quot;", '"'))}
    assert rates["2026-11"] == pytest.approx(2 / 6)
    reasons = re.search(r'id="chart-reasons" data-series="([^"]*)"', page)
    assert reasons is not None
    assert json.loads(reasons.group(1).replace("&quot;", '"')) == payload["audit"]["excluded"]
    # the headline is the last complete month, the month to date beside it
    assert 'data-ds14-month="2026-11"' in page
    assert "2026-12, month to date" in page
    assert 'data-backlog="1"' in page
    assert "3.0 doc/s" not in page
    assert "4 724" not in page
    assert "2 160,00 €" in page


def test_same_data_same_page(database: Database, tmp_path: Path) -> None:
    settings = _dpi_and_ledger(database, tmp_path)
    first = gather(settings, NOW)
    assert render_html(first) == render_html(gather(settings, NOW))


def test_report_command_writes_a_private_file(tmp_path: Path, sqlite_database: Database) -> None:
    engine = sa.create_engine(sqlite_database.url)
    create_contract(engine)
    insert(engine, hand_dpi()[0])
    engine.dispose()
    out = tmp_path / "report.html"
    env = {
        "BACKFILL_DPI_URL": sqlite_database.url,
        "BACKFILL_LEDGER_URL": f"sqlite:///{tmp_path / 'none.sqlite'}",
    }
    result = run_backfill("report", "--html", str(out), "--activity", "45000", "--window", "S2-2023",
                          cwd=tmp_path, env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    assert "history bonus <b>4 724,82 €</b>" in out.read_text(encoding="utf-8")
    bad = run_backfill("report", "--html", str(out), "--window", "S9-2030", cwd=tmp_path, env=env)
    assert bad.returncode == 2
    assert "S1-2022, S2-2022, S1-2023, S2-2023" in bad.stderr
