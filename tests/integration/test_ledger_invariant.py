"""DESIGN §9's end-of-run invariant: any sequence of operations keeps it; a forged ledger breaks it."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backfill.errors import TransitionError
from backfill.ledger import DocResult, DocState, Ledger
from backfill.ledger.schema import (
    bf_attempt,
    bf_attempt_document,
    bf_document,
    bf_lock,
    bf_patient,
    bf_run,
)
from tests.integration.ledger_support import NOW, drive, select, sending

S = DocState
DOCS = {"D1": "P1", "D2": "P1", "D3": "P1", "D4": "P2", "D5": "P2"}
RESULTS = [S.ACKED, S.RETRY_WAIT, S.REJECTED, S.DEFERRED, S.SELECTED]

operation = st.one_of(
    st.tuples(st.just("select"), st.lists(st.sampled_from(sorted(DOCS)), min_size=1, max_size=5)),
    st.tuples(
        st.just("send"),
        st.sampled_from(["P1", "P2"]),
        st.lists(st.sampled_from(RESULTS), min_size=3, max_size=3),
        st.booleans(),
    ),
    st.tuples(st.just("unsendable"), st.sampled_from(sorted(DOCS))),
    st.tuples(st.just("defer"), st.sampled_from(["P1", "P2"])),
    st.tuples(
        st.just("requeue"), st.sampled_from([None, "XDSRegistryMetadataError", "content_missing"])
    ),
    st.tuples(st.just("new_run")),
    st.tuples(st.just("resend_changed"), st.sampled_from(["P1", "P2"])),
)


@pytest.fixture
def ledger(database) -> Iterator[Ledger]:
    with Ledger.open(database.url, clock=lambda: NOW) as ledger:
        yield ledger


def _reset(ledger: Ledger) -> None:
    with ledger.engine.begin() as conn:
        for table in (bf_attempt_document, bf_attempt, bf_document, bf_patient, bf_lock, bf_run):
            conn.execute(sa.delete(table))


def _apply(ledger: Ledger, runs: list[int], op: tuple) -> None:
    run = runs[-1]
    kind = op[0]
    if kind == "select":
        for doc in op[1]:
            select(ledger, run, doc, ipp=DOCS[doc])
    elif kind == "send":
        _, ipp, states, finish = op
        pending = ledger.pending_documents(ipp, NOW + dt.timedelta(days=365))
        if not pending:
            return
        docs = [sending(p.document_id) for p in pending][:3]
        attempt = ledger.begin_attempt(run, ipp, f"2.25.{run}{len(pending)}", docs)
        if finish:  # else: the process dies with the set in flight
            ledger.end_attempt(
                attempt,
                outcome="mixed",
                http_status=200,
                latency=0.01,
                results=[
                    DocResult(
                        doc.document_id,
                        state,
                        code="XDSRegistryMetadataError" if state == S.REJECTED else "c",
                        text="t",
                    )
                    for doc, state in zip(docs, states, strict=False)
                ],
            )
            if any(state == S.DEFERRED for state in states[: len(docs)]):
                ledger.defer_patient(
                    ipp, NOW + dt.timedelta(days=30), "XDSUnknownPatientId", run_id=run
                )
    elif kind == "unsendable":
        ledger.reject_unsendable(run, op[1], "content_missing", "file gone")
    elif kind == "defer":
        ledger.defer_patient(op[1], NOW + dt.timedelta(days=30), "XDSUnknownPatientId", run_id=run)
    elif kind == "requeue":
        ledger.requeue_rejected(run, op[1])
    elif kind == "new_run":
        runs.append(ledger.start_run(mode="run"))
    elif kind == "resend_changed":
        # A crash leftover offered with other bytes: must be refused, changing nothing.
        stale = [p for p in ledger.pending_documents(op[1], NOW) if p.state == S.SENDING]
        if stale:
            changed = sending(stale[0].document_id, content=b"other bytes")
            ledger.begin_attempt(run, op[1], "2.25.77", [changed])


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(operation, min_size=1, max_size=25))
def test_any_sequence_of_operations_keeps_the_invariant(ledger: Ledger, ops: list[tuple]) -> None:
    _reset(ledger)
    runs = [ledger.start_run(mode="run")]
    acked: dict[str, str] = {}
    for op in ops:
        # A refusal writes nothing (the transition tests check that); the sequence goes on.
        with contextlib.suppress(TransitionError):
            _apply(ledger, runs, op)
        now_acked = {a.document_id: a.unique_id for a in ledger.acked_documents()}
        assert acked.items() <= now_acked.items(), "an acknowledged document changed or left acked"
        acked = now_acked
    total = 0
    for run in runs:
        invariant = ledger.check_invariant(run)
        assert invariant.holds, invariant.describe()
        assert sum(invariant.by_state.values()) == invariant.selected
        total += invariant.selected
    assert total == sum(ledger.counts().values())


FORGERIES = {
    "a row deleted": "DELETE FROM bf_document WHERE document_id = 'D1'",
    "acked with no acknowledgement": "UPDATE bf_document SET state = 'acked', unique_id = 'u', hash = 'h', acked_at = updated_at WHERE document_id = 'D2'",
    "acked without uniqueId": "UPDATE bf_document SET unique_id = NULL WHERE document_id = 'D1'",
    "sending with no attempt in flight": "UPDATE bf_document SET state = 'sending' WHERE document_id = 'D2'",
    "an unknown state": "UPDATE bf_document SET state = 'lost' WHERE document_id = 'D2'",
    "rejected with no code": "UPDATE bf_document SET state = 'rejected', last_code = NULL WHERE document_id = 'D2'",
    "deferred with no patient note": "UPDATE bf_document SET state = 'deferred' WHERE document_id = 'D2'",
    "acknowledged twice": "INSERT INTO bf_attempt_document (attempt_id, document_id, from_state, result) SELECT attempt_id, 'D1', 'sending', 'acked' FROM bf_attempt WHERE action = 'unsendable'",
}


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_a_forged_ledger_breaks_the_invariant(ledger: Ledger, forgery: str) -> None:
    run = ledger.start_run(mode="run")
    drive(ledger, run, "D1", S.ACKED)
    select(ledger, run, "D2")
    select(ledger, run, "D3")
    ledger.reject_unsendable(run, "D3", "content_missing", "file gone")
    assert ledger.check_invariant(run).holds
    with ledger.engine.begin() as conn:
        conn.execute(sa.text(FORGERIES[forgery]))
    invariant = ledger.check_invariant(run)
    assert not invariant.holds
    assert "BROKEN" in invariant.describe()
