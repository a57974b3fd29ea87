"""`run --visiting`: which patients are around a visit, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from backfill.visiting import visiting_ipps
from connectors.dpi.contract import create_contract
from tests.conftest import Database
from tests.integration.ds14_support import paris
from tests.integration.selection_support import insert, patient, stay

# 10 Nov 2026 14:00 Paris (13:00 UTC)
NOW = dt.datetime(2026, 11, 10, 13, tzinfo=dt.UTC)


@pytest.fixture
def dpi(database: Database) -> sa.Engine:
    engine = database.engine()
    create_contract(engine)
    stays = [
        stay("in_progress", "P_IN", paris(2026, 10, 1), status="in_progress"),
        stay(
            "today_done", "P_DAYCASE", paris(2026, 11, 10, 7), discharged_at=paris(2026, 11, 10, 12)
        ),
        stay(
            "today_00",
            "P_MIDNIGHT",
            paris(2026, 11, 10, 0, 0),
            discharged_at=paris(2026, 11, 10, 1),
        ),
        stay(
            "yesterday",
            "P_YESTERDAY",
            paris(2026, 11, 9, 23, 59),
            discharged_at=paris(2026, 11, 10, 2),
        ),
        stay(
            "emer_today",
            "P_EMER",
            paris(2026, 11, 10, 9),
            discharged_at=paris(2026, 11, 10, 11),
            encounter_type="EMER",
        ),
        stay("cancel_today", "P_CANCEL", paris(2026, 11, 10, 9), status="cancelled"),
        stay("plan_7", "P_PLAN7", paris(2026, 11, 17, 23, 59), status="planned"),
        stay("plan_8", "P_PLAN8", paris(2026, 11, 18, 0, 0), status="planned"),
        stay("plan_stale", "P_STALE", paris(2026, 11, 2), status="planned"),
        stay("plan_c", "P_PLANCANCEL", paris(2026, 11, 12), status="cancelled"),
        stay("old", "P_OLD", paris(2025, 1, 1), discharged_at=paris(2025, 1, 5)),
        # one patient with two reasons is listed once
        stay("in_progress2", "P_IN", paris(2026, 11, 10, 8), status="in_progress"),
    ]
    ipps = sorted({s["ipp"] for s in stays})
    insert(engine, {"patients": [patient(i) for i in ipps], "stays": stays})
    yield engine
    engine.dispose()


def test_visiting_patients_with_the_default_lookahead(dpi: sa.Engine) -> None:
    with dpi.connect() as conn:
        ipps = visiting_ipps(conn, NOW, 7)
    assert ipps == ["P_DAYCASE", "P_EMER", "P_IN", "P_MIDNIGHT", "P_PLAN7"]


def test_lookahead_zero_and_longer(dpi: sa.Engine) -> None:
    with dpi.connect() as conn:
        assert "P_PLAN7" not in visiting_ipps(conn, NOW, 0)
        assert {"P_PLAN7", "P_PLAN8"} <= set(visiting_ipps(conn, NOW, 8))
        assert "P_STALE" not in visiting_ipps(conn, NOW, 365)


def test_today_is_the_paris_day(dpi: sa.Engine) -> None:
    # 9 Nov 23:30 UTC is already 10 Nov 00:30 in Paris; 9 Nov 22:30 UTC is still the 9th there
    with dpi.connect() as conn:
        late = visiting_ipps(conn, dt.datetime(2026, 11, 9, 23, 30, tzinfo=dt.UTC), 0)
        earlier = visiting_ipps(conn, dt.datetime(2026, 11, 9, 22, 30, tzinfo=dt.UTC), 0)
    assert "P_MIDNIGHT" in late
    assert "P_YESTERDAY" not in late
    assert "P_YESTERDAY" in earlier
    assert "P_MIDNIGHT" not in earlier
