"""Every run tracks the bonus indicator (DESIGN §12): its summary and its metrics show the month's
DS1.4 to date before and after sending, on a DPI whose figure is known by hand.

One returning patient: an earlier stay last year with its discharge letter never sent, and a stay
admitted at the start of the current month (whatever today is). Before the run, that stay is
"eligible, not yet sent" (0 of 1); once the letter is acknowledged, it is counted (1 of 1).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest

from backfill import pipeline
from backfill.databases import open_engine
from backfill.indicator import Ds14, Month
from backfill.pipeline import run
from backfill.selection import DEFAULT_RULE, load_rule
from backfill.selection.paris_time import PARIS
from connectors.dmp_mock.app import MockConfig
from connectors.dmp_mock.server import MockServer
from connectors.dpi.contract import create_contract
from tests.conftest import Database
from tests.integration.pipeline_support import Dpi, settings_for
from tests.integration.selection_support import author, document, insert, patient, stay, unit


def _returning_patient_dpi(folder: Path, now: dt.datetime) -> Dpi:
    month_start = Month.of(now).start  # naive Paris wall clock, as the DPI stores times
    last_year = month_start.replace(year=month_start.year - 1)
    url = f"sqlite:///{folder / 'dpi.sqlite'}"
    engine = open_engine(url, "DPI")
    try:
        create_contract(engine)
        insert(
            engine,
            {
                "patients": [patient("P1")],
                "units": [unit()],
                "authors": [author()],
                "stays": [
                    stay("S1", "P1", last_year, discharged_at=last_year + dt.timedelta(days=3)),
                    stay("S2", "P1", month_start, status="in_progress"),
                ],
                "documents": [
                    document("D1", "P1", last_year + dt.timedelta(days=3), stay_id="S1", kind="LDL")
                ],
            },
        )
    finally:
        engine.dispose()
    return Dpi(url, folder)


class _Display:
    """A progress display that also takes DS1.4 as it rises (`show_ds14`)."""

    def __init__(self) -> None:
        self.shown: list[tuple[int, int]] = []

    def start(self, patients_hint: int | None) -> None: ...
    def advance(self, documents: int, acked: int) -> None: ...
    def stop(self) -> None: ...

    def show_ds14(self, before: Ds14 | None, now: Ds14) -> None:
        assert before is not None
        self.shown.append((now.numerator, now.denominator))


def test_the_summary_and_the_metrics_show_ds14_before_and_after(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline, "_DS14_EVERY", 0.01)  # measured again as often as it can
    now = dt.datetime.now(dt.UTC)
    dpi = _returning_patient_dpi(tmp_path, now)
    display = _Display()
    with MockServer(MockConfig(db_url=f"sqlite:///{tmp_path / 'mock.sqlite'}")) as mock:
        settings = settings_for(dpi, database.url, mock.services_url, tmp_path)
        summary = asyncio.run(
            run(
                settings,
                mode="nightly",
                rule=load_rule(DEFAULT_RULE),
                as_of=now.astimezone(PARIS),
                progress=display,
            )
        )
    if Month.of(dt.datetime.now(dt.UTC)) != Month.of(now):
        pytest.skip("the month changed during the run")  # a midnight on the last day, once a month
    assert summary.exit_code == 0, summary.lines()
    assert summary.acked == 1
    before, after = summary.ds14_before, summary.ds14_after
    assert before is not None
    assert after is not None
    assert (before.numerator, before.denominator) == (0, 1)
    assert before.breakdown["eligible_not_yet_sent"] == 1
    assert (after.numerator, after.denominator) == (1, 1)
    assert f"DS1.4 {after.month} to date: 0.0 % before the run, 100.0 % after" in "\n".join(
        summary.lines()
    )
    metrics = (tmp_path / "metrics.prom").read_text()
    assert 'backfill_run_ds14_before{mode="nightly"} 0.0' in metrics
    assert 'backfill_run_ds14_after{mode="nightly"} 1.0' in metrics
    assert summary.as_json()["ds14_after"]["numerator"] == 1
    # The display got the figure from the start, and never saw it move but up.
    assert display.shown[0] == (0, 1)
    assert display.shown == sorted(display.shown)
    assert all(shown in ((0, 1), (1, 1)) for shown in display.shown)
