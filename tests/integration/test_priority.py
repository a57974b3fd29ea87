"""Patient priority (DESIGN §10) from dpi_stay, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

from backfill.priority import Priority, patient_priorities, priority_order
from backfill.selection.paris_time import instant_of
from connectors.dpi.contract import create_contract
from tests.conftest import Database
from tests.integration.selection_support import insert, patient, stay

NOW = dt.datetime(2026, 3, 18, 14, 0)  # Paris wall clock
AS_OF = instant_of(NOW)


def test_urgent_patients_first_then_by_most_recent_stay(database: Database) -> None:
    engine = database.engine()
    create_contract(engine)
    days = dt.timedelta(days=1)
    stays = [
        stay("s1", "in-progress", NOW - 40 * days, status="in_progress"),
        stay("s2", "planned-soon", NOW + 3 * days, status="planned"),
        stay("s2b", "planned-soon", NOW - 400 * days),
        stay("s3", "planned-late", NOW + 30 * days, status="planned"),
        stay("s4", "this-month", NOW.replace(day=2)),
        stay("s5", "last-month", NOW.replace(day=1) - days),
        stay("s6", "old", NOW - 900 * days),
        stay("s7", "cancelled-only", NOW - 2 * days, status="cancelled"),
        stay("s8", "old", NOW - 2000 * days),
    ]
    ipps = sorted({s["ipp"] for s in stays} | {"no-stay"})
    insert(engine, {"patients": [patient(ipp) for ipp in ipps], "stays": stays})
    with engine.connect() as conn:
        keys = patient_priorities(conn, ipps, AS_OF, lookahead_days=7)
    engine.dispose()

    assert keys["in-progress"].urgent
    assert keys["planned-soon"].urgent
    assert keys["this-month"].urgent
    assert not keys["planned-late"].urgent
    assert not keys["last-month"].urgent
    assert keys["planned-soon"].last_stay_at == NOW - 400 * days  # a planned stay has not happened
    assert keys["old"].last_stay_at == NOW - 900 * days
    assert keys["cancelled-only"] == Priority(False, None) == keys["no-stay"]
    order = sorted(ipps, key=lambda ipp: priority_order(ipp, keys[ipp]))
    assert order == [
        "this-month",  # urgent, by latest stay: 2 March
        "in-progress",  # urgent: 6 February
        "planned-soon",  # urgent: its last stay that happened, 400 days ago
        "last-month",
        "old",
        "cancelled-only",  # no stay that happened: last, by ipp
        "no-stay",
        "planned-late",
    ]
