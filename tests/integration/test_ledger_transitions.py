"""The ledger's transitions on SQLite and PostgreSQL: what a run does to a document, what it may
never do (resend once acked, resend a crash leftover with other bytes), and crash recovery."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backfill.errors import TransitionError
from backfill.ledger import DocResult, DocState, Ledger, Selected, SendingDocument
from backfill.ledger.schema import bf_attempt, bf_attempt_document, bf_document, bf_patient, bf_run
from backfill.selection.paris_time import PARIS
from tests.integration.ledger_support import NOW, ack, busy, drive, select, sending, state_of

S = DocState


def _snapshot(ledger: Ledger) -> tuple[list[tuple[object, ...]], int, int]:
    with ledger.engine.connect() as conn:
        docs = [
            tuple(row)
            for row in conn.execute(sa.select(bf_document).order_by(bf_document.c.document_id))
        ]
        attempts = conn.execute(sa.select(sa.func.count()).select_from(bf_attempt)).scalar_one()
        logged = conn.execute(
            sa.select(sa.func.count()).select_from(bf_attempt_document)
        ).scalar_one()
    return docs, attempts, logged


def test_a_document_goes_selected_sending_acked_with_its_log(ledger: Ledger, run: int) -> None:
    select(ledger, run, "D1", "D2")
    assert [d.document_id for d in ledger.pending_documents("P1")] == ["D1", "D2"]
    attempt = ledger.begin_attempt(run, "P1", "2.25.100", [sending("D1"), sending("D2")])
    assert {state_of(ledger, d) for d in ("D1", "D2")} == {S.SENDING}
    ledger.end_attempt(
        attempt,
        outcome="done",
        http_status=200,
        latency=0.02,
        results=[
            DocResult("D1", S.ACKED),
            DocResult("D2", S.REJECTED, "XDSRegistryMetadataError", "bad author"),
        ],
    )
    assert ledger.counts()[S.ACKED] == 1
    assert ledger.counts()[S.REJECTED] == 1
    assert ledger.pending_documents("P1") == []
    acked = list(ledger.acked_documents())
    assert [(a.document_id, a.unique_id, a.hash, a.acked_at) for a in acked] == [
        ("D1", sending("D1").unique_id, sending("D1").hash, NOW)
    ]
    with ledger.engine.connect() as conn:
        row = conn.execute(sa.select(bf_attempt)).one()
        results = dict(
            conn.execute(
                sa.select(bf_attempt_document.c.document_id, bf_attempt_document.c.result)
            ).all()
        )
    assert (
        row.run_id,
        row.ipp,
        row.submission_set_id,
        row.documents,
        row.outcome,
        row.http_status,
    ) == (
        run,
        "P1",
        "2.25.100",
        2,
        "done",
        200,
    )
    assert results == {"D1": "acked", "D2": "rejected"}


def test_never_resent_once_acked_and_nothing_written_on_refusal(ledger: Ledger, run: int) -> None:
    drive(ledger, run, "D1", S.ACKED)
    select(ledger, run, "D2")
    before = _snapshot(ledger)
    with pytest.raises(TransitionError, match="D1: acked → sending"):
        ledger.begin_attempt(run, "P1", "2.25.200", [sending("D2"), sending("D1")])
    with pytest.raises(TransitionError, match="D1: acked → rejected"):
        ledger.reject_unsendable(run, "D1", "content_missing", "gone")
    assert _snapshot(ledger) == before
    assert "D1" not in [d.document_id for d in ledger.pending_documents("P1")]


@pytest.mark.parametrize("state", [S.ACKED, S.REJECTED])
@pytest.mark.parametrize("action", ["begin_attempt", "reject_unsendable"])
def test_acked_and_rejected_documents_are_neither_sent_nor_rejected_again(
    ledger: Ledger, run: int, state: DocState, action: str
) -> None:
    drive(ledger, run, "D1", state)
    before = _snapshot(ledger)
    target, attempt = {
        "begin_attempt": (
            S.SENDING,
            lambda: ledger.begin_attempt(run, "P1", "2.25.300", [sending("D1")]),
        ),
        "reject_unsendable": (
            S.REJECTED,
            lambda: ledger.reject_unsendable(run, "D1", "content_missing", "file gone"),
        ),
    }[action]
    with pytest.raises(TransitionError, match=f"D1: {state} → {target}"):
        attempt()
    assert _snapshot(ledger) == before


@pytest.mark.parametrize("state", [S.SELECTED, S.RETRY_WAIT, S.DEFERRED, S.SENDING])
def test_reject_unsendable_takes_any_waiting_document(
    ledger: Ledger, run: int, state: DocState
) -> None:
    drive(ledger, run, "D1", state)
    ledger.reject_unsendable(run, "D1", "content_missing", "file gone")
    assert state_of(ledger, "D1") == S.REJECTED
    with ledger.engine.connect() as conn:
        log = conn.execute(
            sa.select(bf_attempt.c.action, bf_attempt.c.outcome).order_by(
                bf_attempt.c.attempt_id.desc()
            )
        ).first()
    assert tuple(log) == ("unsendable", "rejected")


def _in_flight(ledger: Ledger, run: int, *docs: str) -> int:
    select(ledger, run, *docs)
    return ledger.begin_attempt(run, "P1", "2.25.400", [sending(doc) for doc in docs])


def test_an_answer_is_recorded_once(ledger: Ledger, run: int) -> None:
    attempt = _in_flight(ledger, run, "D1")
    ledger.end_attempt(
        attempt, outcome="done", http_status=200, latency=0, results=[DocResult("D1", S.ACKED)]
    )
    with pytest.raises(TransitionError, match="already has its answer"):
        ledger.end_attempt(
            attempt,
            outcome="document",
            http_status=200,
            latency=0,
            results=[DocResult("D1", S.REJECTED, "X")],
        )
    assert state_of(ledger, "D1") == S.ACKED


def test_an_answer_must_name_every_document_of_its_set_once(ledger: Ledger, run: int) -> None:
    attempt = _in_flight(ledger, run, "D1", "D2")
    for results in (
        [DocResult("D1", S.ACKED)],
        [DocResult("D1", S.ACKED), DocResult("D1", S.ACKED), DocResult("D2", S.ACKED)],
        [DocResult("D1", S.ACKED), DocResult("D2", S.ACKED), DocResult("D3", S.ACKED)],
    ):
        with pytest.raises(TransitionError, match="one result per document"):
            ledger.end_attempt(attempt, outcome="done", http_status=200, latency=0, results=results)
    assert {state_of(ledger, d) for d in ("D1", "D2")} == {S.SENDING}


def test_an_answer_cannot_leave_a_document_sending(ledger: Ledger, run: int) -> None:
    attempt = _in_flight(ledger, run, "D1")
    with pytest.raises(TransitionError, match="an answer cannot leave"):
        ledger.end_attempt(
            attempt, outcome="?", http_status=None, latency=0, results=[DocResult("D1", S.SENDING)]
        )


def test_a_set_holds_one_known_patient_s_documents(ledger: Ledger, run: int) -> None:
    select(ledger, run, "D1", ipp="P1")
    select(ledger, run, "D9", ipp="P2")
    with pytest.raises(TransitionError, match="one patient"):
        ledger.begin_attempt(run, "P1", "2.25.500", [sending("D1"), sending("D9")])
    with pytest.raises(TransitionError, match="not in the ledger: D404"):
        ledger.begin_attempt(run, "P1", "2.25.501", [sending("D1"), sending("D404")])
    assert state_of(ledger, "D1") == S.SELECTED


def test_after_a_crash_sending_rows_come_back_with_the_same_unique_id_and_bytes(database) -> None:
    with Ledger.open(database.url, clock=lambda: NOW) as first:
        run = first.start_run(mode="run")
        select(first, run, "D1", "D2")
        first.begin_attempt(run, "P1", "2.25.600", [sending("D1"), sending("D2")])
        # The process dies here: no end_attempt.
    with Ledger.open(database.url, clock=lambda: NOW) as second:
        rerun = second.start_run(mode="run")
        assert list(second.pending_patients()) == ["P1"]
        pending = {d.document_id: d for d in second.pending_documents("P1")}
        for doc in ("D1", "D2"):
            assert pending[doc].state == S.SENDING
            assert (pending[doc].unique_id, pending[doc].hash, pending[doc].size) == (
                sending(doc).unique_id,
                sending(doc).hash,
                sending(doc).size,
            )
        changed = SendingDocument("D1", sending("D1").unique_id, "0" * 40, sending("D1").size)
        with pytest.raises(TransitionError, match="same uniqueId, hash and size"):
            second.begin_attempt(rerun, "P1", "2.25.601", [changed, sending("D2")])
        ack(second, rerun, "P1", "D1", "D2", set_id="2.25.602")
        assert second.counts()[S.ACKED] == 2
        # The first run's tally gave its documents to the rerun: both invariants still hold.
        assert second.check_invariant(run).holds, second.check_invariant(run).describe()
        invariant = second.check_invariant(rerun)
        assert invariant.holds, invariant.describe()
        assert invariant.selected == 2


def test_retry_wait_is_due_only_after_its_time_and_deferred_after_the_recheck(
    ledger: Ledger, run: int
) -> None:
    select(ledger, run, "D1", ipp="P1")
    select(ledger, run, "D2", ipp="P2")
    later = NOW + dt.timedelta(hours=2)
    busy(ledger, run, "P1", "D1", later, set_id="2.25.700")
    assert (
        ledger.defer_patient("P2", NOW + dt.timedelta(days=30), "XDSUnknownPatientId", run_id=run)
        == 1
    )
    assert list(ledger.pending_patients(NOW)) == []
    assert list(ledger.pending_patients(later)) == ["P1"]
    assert list(ledger.pending_patients(NOW + dt.timedelta(days=31))) == ["P1", "P2"]
    assert set(ledger.without_dmp(["P1", "P2"], NOW)) == {"P2"}
    assert set(ledger.without_dmp(["P2"], NOW + dt.timedelta(days=31))) == set()
    # The recheck finds a DMP: the patient is no longer noted without one.
    attempt = ledger.begin_attempt(run, "P2", "2.25.701", [sending("D2")])
    ledger.end_attempt(
        attempt, outcome="done", http_status=200, latency=1, results=[DocResult("D2", S.ACKED)]
    )
    assert set(ledger.without_dmp(["P2"], NOW)) == set()


def test_record_selected_is_idempotent_and_keeps_states(ledger: Ledger, run: int) -> None:
    drive(ledger, run, "D1", S.ACKED)
    drive(ledger, run, "D2", S.REJECTED)
    select(ledger, run, "D3")
    again = ledger.start_run(mode="run")
    taken = ledger.record_selected(
        again, [Selected(d, f"S-{d}", 1, "P1", urgent=True) for d in ("D1", "D2", "D3", "D4")]
    )
    assert taken == 2  # D3 (waiting, taken over) and D4 (new); acked and rejected stay put
    assert [state_of(ledger, d) for d in ("D1", "D2", "D3", "D4")] == [
        S.ACKED,
        S.REJECTED,
        S.SELECTED,
        S.SELECTED,
    ]
    assert ledger.check_invariant(run).holds
    assert ledger.check_invariant(again).selected == 2


def test_pending_patients_come_urgent_first_then_by_most_recent_stay(
    ledger: Ledger, run: int
) -> None:
    def at(day: int) -> dt.datetime:
        return dt.datetime(2026, 11, day, 12, 0)  # naive: Paris wall clock, as the DPI has it

    ledger.record_selected(
        run,
        [
            Selected("A", "A", 1, "P-old", last_stay_at=at(1)),
            Selected("B", "B", 1, "P-urgent", urgent=True, last_stay_at=at(2)),
            Selected("C", "C", 1, "P-recent", last_stay_at=at(20)),
            Selected("D", "D", 1, "P-never"),
            Selected("E", "E", 1, "P-urgent-recent", urgent=True, last_stay_at=at(21)),
        ],
    )
    expected = ["P-urgent-recent", "P-urgent", "P-recent", "P-old", "P-never"]
    assert list(ledger.pending_patients(NOW)) == expected
    assert list(ledger.pending_patients(NOW, ipps=["P-never", "P-old", "P-urgent"])) == [
        "P-urgent",
        "P-old",
        "P-never",
    ]
    # The next run's selection refreshes the priority, whatever became of the documents.
    drive(ledger, run, "A", S.RETRY_WAIT, ipp="P-old")
    later = ledger.start_run(mode="run")
    ledger.record_selected(
        later, [Selected("A", "A", 1, "P-old", urgent=True, last_stay_at=at(25))]
    )
    assert next(ledger.pending_patients(NOW)) == "P-old"


_PATIENT = st.tuples(st.booleans(), st.sampled_from([None, 1, 2, 3]))  # ties on the stay's day


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(patients=st.lists(_PATIENT, min_size=1, max_size=9), page=st.integers(1, 4))
def test_pending_patients_in_pages_keep_the_order_of_one_query(
    ledger: Ledger, patients: list[tuple[bool, int | None]], page: int
) -> None:
    with ledger.engine.begin() as conn:
        for table in (bf_document, bf_patient, bf_run):
            conn.execute(sa.delete(table))
    run = ledger.start_run(mode="run")
    stays = {None: None} | {day: dt.datetime(2026, 11, day, 8, 30) for day in (1, 2, 3)}
    ledger.record_selected(
        run,
        [
            Selected(f"D{n}", f"S{n}", 1, f"P{n:02}", urgent=urgent, last_stay_at=stays[day])
            for n, (urgent, day) in enumerate(patients)
        ],
    )
    expected = sorted(
        range(len(patients)),
        key=lambda n: (
            not patients[n][0],
            patients[n][1] is None,
            -(patients[n][1] or 0),
            n,
        ),
    )
    assert list(ledger.pending_patients(NOW, page=page)) == [f"P{n:02}" for n in expected]


def test_pending_patients_hold_no_read_open_while_the_run_sends(ledger: Ledger, run: int) -> None:
    ledger.record_selected(run, [Selected(f"D{n}", f"S{n}", 1, f"P{n}") for n in range(5)])
    patients = ledger.pending_patients(NOW, page=2)
    first = next(patients)
    # While the caller sends that patient, the ledger is free: no connection is held, so no
    # read transaction pins SQLite's WAL (never reset, it grew all run) or PostgreSQL's vacuum.
    assert ledger.engine.pool.checkedout() == 0
    drive(ledger, run, "D0", S.ACKED, ipp="P0")
    if ledger.engine.dialect.name == "sqlite":
        with ledger.engine.connect() as conn:
            busy, frames, copied = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        assert (busy, copied) == (0, frames)
    assert [first, *patients] == ["P0", "P1", "P2", "P3", "P4"]


def test_requeue_rejected_puts_them_back_and_logs_it(ledger: Ledger, run: int) -> None:
    drive(ledger, run, "D1", S.REJECTED)
    drive(ledger, run, "D2", S.REJECTED)
    select(ledger, run, "D3")
    ledger.reject_unsendable(run, "D3", "content_missing", "file gone")
    retry = ledger.start_run(mode="retry")
    assert ledger.requeue_rejected(retry, code="content_missing") == 1
    assert state_of(ledger, "D3") == S.SELECTED
    assert ledger.requeue_rejected(retry) == 2
    assert ledger.counts()[S.REJECTED] == 0
    with ledger.engine.connect() as conn:
        rows = conn.execute(
            sa.select(bf_attempt.c.action, bf_attempt.c.documents, bf_attempt.c.run_id).where(
                bf_attempt.c.action == "requeue"
            )
        ).all()
    assert [tuple(r) for r in rows] == [("requeue", 1, retry), ("requeue", 2, retry)]
    assert ledger.check_invariant(retry).holds
    assert ledger.check_invariant(retry).not_attempted == 3


_INSTANT = st.datetimes(
    dt.datetime(2001, 1, 1),
    dt.datetime(2098, 12, 31),
    timezones=st.sampled_from([dt.UTC, PARIS, dt.timezone(dt.timedelta(hours=-7, minutes=-30))]),
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(due=_INSTANT, offset=st.integers(-2, 2))
def test_instants_bound_on_the_drivers_cursor_compare_as_sqlalchemys_do(
    ledger: Ledger, due: dt.datetime, offset: int
) -> None:
    """The calls made per POST run on the driver's cursor, the rest of the ledger through
    SQLAlchemy: a retry time written by the one (end_attempt) and a recheck written by the other
    (defer_patient) are due exactly once their time has come, to the microsecond and in any time
    zone, whichever path compares them, and read back as the instant written."""
    with ledger.engine.begin() as conn:
        for table in (bf_attempt_document, bf_attempt, bf_document, bf_patient, bf_run):
            conn.execute(sa.delete(table))
    run = ledger.start_run(mode="run")
    select(ledger, run, "D1", ipp="P1")
    select(ledger, run, "D2", ipp="P2")
    busy(ledger, run, "P1", "D1", due, set_id="2.25.1")
    ledger.defer_patient("P2", due, "XDSUnknownPatientId", run_id=run)
    now = due + dt.timedelta(microseconds=offset)
    come = offset >= 0
    assert [d.document_id for d in ledger.pending_documents("P1", now)] == (["D1"] if come else [])
    assert [d.document_id for d in ledger.pending_documents("P2", now)] == (["D2"] if come else [])
    assert sorted(ledger.pending_patients(now)) == (["P1", "P2"] if come else [])
    with ledger.engine.connect() as conn:
        written = conn.execute(
            sa.select(bf_document.c.next_attempt_at).where(bf_document.c.document_id == "D1")
        ).scalar_one()
    # As an instant: a Paris time in the spring gap equals no instant of another zone (PEP 495).
    assert written == due.astimezone(dt.UTC)


def test_a_statement_refused_on_the_drivers_cursor_is_sqlalchemys_error_and_writes_nothing(
    ledger: Ledger, run: int
) -> None:
    """Callers read database failures as SQLAlchemy's errors (the CLI's messages, the sender's
    stop): the per-POST calls raise them too, and their transaction is rolled back whole."""
    select(ledger, run, "D1")
    before = _snapshot(ledger)
    with pytest.raises(sa.exc.IntegrityError):
        ledger.begin_attempt(run + 1000, "P1", "2.25.2", [sending("D1")])  # no such run
    assert _snapshot(ledger) == before
    assert state_of(ledger, "D1") is S.SELECTED
