"""Selection's two ledger reasons from a real ledger (DESIGN §5: 4 acknowledged by us, 15 no DMP),
on SQLite and PostgreSQL, and the batched lookups behind them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from backfill.ledger import DocState, Ledger, Selected
from backfill.selection import Reason, decide, load_rule
from connectors.dpi.contract import create_contract
from tests.integration.ledger_support import ack, drive, sending
from tests.integration.selection_support import author, document, insert, patient, unit

AS_OF = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
S = DocState


@pytest.fixture
def ledger(database) -> Iterator[Ledger]:
    with Ledger.open(database.url, clock=lambda: AS_OF) as ledger:
        yield ledger


def test_acknowledged_and_no_dmp_reasons_come_from_the_ledger(database, ledger: Ledger) -> None:
    t = dt.datetime(2025, 6, 1, 10, 0)
    dpi = database.engine()
    create_contract(dpi)
    insert(
        dpi,
        {
            "patients": [patient("P1"), patient("P2"), patient("P3")],
            "units": [unit()],
            "authors": [author()],
            "documents": [
                document("A1", "P1", t, set_id="A", version=1),
                document("B1", "P1", t, set_id="B", version=1),
                document("B2", "P1", t, set_id="B", version=2),
                document("R1", "P1", t),
                document("N1", "P2", t),
                document("Q1", "P3", t),
            ],
        },
    )
    run = ledger.start_run(mode="run")
    # A1 acknowledged; B1 acknowledged, so B2 replaces our uniqueId; R1 rejected (still owed).
    ledger.record_selected(run, [Selected("A1", "A", 1, "P1"), Selected("B1", "B", 1, "P1")])
    drive(ledger, run, "R1", S.REJECTED)
    ack(ledger, run, "P1", "A1", "B1")
    # P2 has no DMP for 30 more days; P3's recheck date has passed.
    ledger.defer_patient("P2", AS_OF + dt.timedelta(days=30), "XDSUnknownPatientId")
    ledger.defer_patient("P3", AS_OF - dt.timedelta(days=1), "XDSUnknownPatientId")
    try:
        got = {d.document_id: d for d in decide(dpi, load_rule(), AS_OF, facts=ledger)}
    finally:
        dpi.dispose()
    assert got["A1"].reason is Reason.ALREADY_IN_DMP
    assert got["B1"].reason is Reason.SUPERSEDED_VERSION
    assert got["B2"].selected
    assert got["B2"].replaces_unique_id == sending("B1").unique_id
    assert got["R1"].selected
    assert got["N1"].reason is Reason.NO_DMP
    assert got["Q1"].selected


def test_fact_lookups_take_large_batches(ledger: Ledger) -> None:
    """More keys than one IN list holds: every fact is still found (the lookups are chunked)."""
    run = ledger.start_run(mode="run")
    ledger.record_selected(run, [Selected(f"D{n}", f"S{n}", 1, f"P{n % 7}") for n in range(2500)])
    ids = [f"D{n}" for n in range(0, 2500, 499)]
    for doc in ids:
        ipp = f"P{int(doc[1:]) % 7}"
        ack(ledger, run, ipp, doc, set_id=f"2.25.{doc[1:]}")
    for n in range(7):
        ledger.defer_patient(f"P{n}", AS_OF + dt.timedelta(days=n), "XDSUnknownPatientId")
    acked = ledger.acknowledged([f"S{n}" for n in range(2500)])
    assert sorted(acked) == sorted(f"S{doc[1:]}" for doc in ids)
    assert all(list(versions) == [1] for versions in acked.values())
    assert set(ledger.without_dmp([f"P{n}" for n in range(7)] + ["nobody"], AS_OF)) == {
        f"P{n}" for n in range(1, 7)
    }
