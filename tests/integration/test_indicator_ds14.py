"""DS1.4 on a hand-computed DPI, on SQLite and PostgreSQL: the engine's query and sql/indicator_ds14.sql agree."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from backfill.config import Settings
from backfill.indicator import (
    Month,
    compute_discharge_share,
    compute_ds14,
    load_acked,
)
from backfill.indicator_sources import load_ledger_acks
from backfill.ledger import DocState, Ledger
from connectors.dpi.contract import create_contract
from tests.conftest import Database
from tests.integration.ds14_support import (
    AFTER_NOVEMBER,
    EXPECTED_NOVEMBER,
    HISTORY_KINDS,
    NOVEMBER,
    UTC,
    hand_dpi,
    run_sql_file,
)
from tests.integration.ledger_support import drive
from tests.integration.selection_support import insert


@pytest.fixture
def dpi(database: Database) -> sa.Engine:
    engine = database.engine()
    create_contract(engine)
    rows, _ = hand_dpi()
    insert(engine, rows)
    yield engine
    engine.dispose()


def _acked() -> list[tuple[str, dt.datetime]]:
    return hand_dpi()[1]


def test_november_matches_the_hand_count(dpi: sa.Engine) -> None:
    with dpi.connect() as conn:
        figure = compute_ds14(
            conn, NOVEMBER, now=AFTER_NOVEMBER, eligible_kinds=HISTORY_KINDS, acked=_acked()
        )
    assert figure.breakdown == EXPECTED_NOVEMBER
    assert (figure.numerator, figure.denominator) == (2, 6)
    assert not figure.month_to_date
    js = figure.as_json()
    assert js["month"] == "2026-11"
    assert js["rate"] == pytest.approx(2 / 6)
    assert set(js) >= {"month", "denominator", "numerator", "rate", "breakdown"}


def test_the_sql_file_gives_the_same_numbers(dpi: sa.Engine) -> None:
    with dpi.connect() as conn:
        load_acked(conn, _acked())
        assert run_sql_file(conn, NOVEMBER, AFTER_NOVEMBER) == EXPECTED_NOVEMBER
        # and month to date, and another encounter-type setting
        mid = dt.datetime(2026, 11, 15, 12, tzinfo=UTC)
        for now, types in ((mid, ("IMP",)), (AFTER_NOVEMBER, ("IMP", "EMER", "EXTERNE"))):
            engine_figure = compute_ds14(
                conn, NOVEMBER, now=now, encounter_types=types, eligible_kinds=HISTORY_KINDS
            )
            assert run_sql_file(conn, NOVEMBER, now, encounter_types=types) == (
                engine_figure.breakdown
            )


def test_only_the_live_feed_without_the_ledger(dpi: sa.Engine) -> None:
    with dpi.connect() as conn:
        figure = compute_ds14(
            conn, NOVEMBER, now=AFTER_NOVEMBER, eligible_kinds=HISTORY_KINDS, acked=[]
        )
    # P2's consultation report was only acked by us: without the ledger it is not in the DMP
    assert figure.breakdown["counted"] == 1
    assert figure.breakdown["eligible_not_yet_sent"] == 2


def test_month_to_date_stops_at_now(dpi: sa.Engine) -> None:
    # 15 Nov 13:00 Paris: S1b (1 Nov), S2b (10 Nov; its document acked 15 Nov 08:00 UTC), S6b (5 Nov)
    now = dt.datetime(2026, 11, 15, 12, tzinfo=UTC)
    with dpi.connect() as conn:
        figure = compute_ds14(conn, NOVEMBER, now=now, eligible_kinds=HISTORY_KINDS, acked=_acked())
        before_ack = compute_ds14(
            conn,
            NOVEMBER,
            now=dt.datetime(2026, 11, 15, 7, tzinfo=UTC),
            eligible_kinds=HISTORY_KINDS,
        )
    assert figure.month_to_date
    assert (figure.numerator, figure.denominator) == (2, 3)
    assert (before_ack.numerator, before_ack.denominator) == (1, 3)


def test_a_month_without_returning_stays_has_no_rate(dpi: sa.Engine) -> None:
    with dpi.connect() as conn:
        figure = compute_ds14(
            conn, Month(2026, 7), now=AFTER_NOVEMBER, eligible_kinds=HISTORY_KINDS, acked=[]
        )
    assert figure.denominator == 0
    assert figure.rate is None
    assert figure.as_json()["rate"] is None


def test_discharge_letters_and_prescriptions_of_the_month(dpi: sa.Engine) -> None:
    # November discharges of IMP stays: S2b S3b S4b S6b S7b S8c S9a S9b S10b (9);
    # only S7b has an LDL sent live, and no ORDO was sent.
    with dpi.connect() as conn:
        ds11 = compute_discharge_share(conn, "DS1.1", NOVEMBER, now=AFTER_NOVEMBER)
        ds12 = compute_discharge_share(conn, "DS1.2", NOVEMBER, now=AFTER_NOVEMBER)
    assert (ds11.with_document, ds11.discharges) == (1, 9)
    assert (ds12.with_document, ds12.discharges) == (0, 9)


def _read_only_url(database: Database, role: str | None) -> str:
    if database.backend == "sqlite":
        path = sa.engine.make_url(database.url).database
        return f"sqlite:///file:{path}?mode=ro&uri=true"
    assert role is not None
    return sa.engine.make_url(database.url).set(username=role).render_as_string(hide_password=False)


def test_a_read_only_dpi_account_is_enough(database: Database, dpi: sa.Engine) -> None:
    """The acked pairs go into a TEMPORARY table: no write right on the DPI is needed."""
    role = None
    if database.backend == "postgresql":
        role = f"ro_{uuid.uuid4().hex[:10]}"
        with dpi.begin() as conn:
            schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
            conn.execute(sa.text(f'CREATE ROLE "{role}" LOGIN'))
            conn.execute(sa.text(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"'))
            conn.execute(sa.text(f'GRANT SELECT ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"'))
    reader = sa.create_engine(_read_only_url(database, role))
    try:
        with reader.connect() as conn:
            with pytest.raises(sa.exc.DBAPIError):  # really read only
                conn.execute(sa.text("DELETE FROM dpi_stay"))
            conn.rollback()
            figure = compute_ds14(
                conn, NOVEMBER, now=AFTER_NOVEMBER, eligible_kinds=HISTORY_KINDS, acked=_acked()
            )
        assert figure.breakdown == EXPECTED_NOVEMBER
    finally:
        reader.dispose()
        if role is not None:
            with dpi.begin() as conn:
                conn.execute(sa.text(f'DROP OWNED BY "{role}"'))
                conn.execute(sa.text(f'DROP ROLE "{role}"'))


def _ack_in_ledger(ledger_url: str) -> None:
    """The ledger acknowledges the hand DPI's three documents at their times, through its API."""
    with Ledger.open(ledger_url) as ledger:
        run_id = ledger.start_run(mode="history")
        for document_id, acked_at in _acked():
            ledger.clock = lambda when=acked_at: when
            drive(ledger, run_id, document_id, DocState.ACKED, ipp=document_id)


@pytest.mark.parametrize("layout", ["same database", "separate databases"])
def test_acknowledgements_come_from_the_ledger(
    database: Database, dpi: sa.Engine, tmp_path: Path, layout: str
) -> None:
    ledger_url = database.url if layout == "same database" else f"sqlite:///{tmp_path / 'l.sqlite'}"
    _ack_in_ledger(ledger_url)
    settings = Settings(dpi={"url": database.url}, ledger={"url": ledger_url})
    with dpi.connect() as conn:
        assert load_ledger_acks(conn, settings) is None
        figure = compute_ds14(conn, NOVEMBER, now=AFTER_NOVEMBER, eligible_kinds=HISTORY_KINDS)
    assert figure.breakdown == EXPECTED_NOVEMBER


def test_no_ledger_yet_counts_the_live_feed_and_says_so(
    database: Database, dpi: sa.Engine, tmp_path: Path
) -> None:
    settings = Settings(
        dpi={"url": database.url}, ledger={"url": f"sqlite:///{tmp_path / 'none.sqlite'}"}
    )
    with dpi.connect() as conn:
        note = load_ledger_acks(conn, settings)
        figure = compute_ds14(conn, NOVEMBER, now=AFTER_NOVEMBER, eligible_kinds=HISTORY_KINDS)
    assert note is not None
    assert "live feed" in note
    assert figure.breakdown["counted"] == 1
    assert not (tmp_path / "none.sqlite").exists()  # reading never creates a ledger
