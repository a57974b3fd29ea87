"""Answers held for the next commit (`Ledger.holding_writes`), on SQLite and PostgreSQL: what
must be committed before a POST is, what may wait is seen by others once committed, and a call
that fails undoes only its own writes."""

from __future__ import annotations

import threading

import pytest

from backfill.errors import TransitionError
from backfill.ledger import DocState, Ledger
from tests.integration.ledger_support import answer_acked, select, sending, state_of

S = DocState


def _seen_elsewhere(ledger: Ledger, document_id: str) -> DocState:
    """The state another connection reads (what a crash would leave, what `status` shows)."""
    with Ledger.open_existing(ledger.url) as other:  # type: ignore[union-attr]
        return state_of(other, document_id)


def test_sending_is_committed_before_the_post_and_a_held_answer_with_the_next(
    ledger: Ledger, run: int
) -> None:
    select(ledger, run, "D1", "D2")
    with ledger.holding_writes():
        first = ledger.begin_attempt(run, "P1", "2.25.1", [sending("D1")])
        assert _seen_elsewhere(ledger, "D1") is S.SENDING  # committed: the POST may go
        answer_acked(ledger, first, "D1")
        assert _seen_elsewhere(ledger, "D1") is S.SENDING  # a crash now: resent, same uniqueId
        ledger.begin_attempt(run, "P1", "2.25.2", [sending("D2")])
        assert _seen_elsewhere(ledger, "D1") is S.ACKED  # committed with the next `sending`
        assert _seen_elsewhere(ledger, "D2") is S.SENDING
    assert ledger.check_invariant(run).holds


def test_what_is_held_is_committed_by_commit_held_and_at_the_end(ledger: Ledger, run: int) -> None:
    select(ledger, run, "D1", "D2")
    with ledger.holding_writes():
        one = ledger.begin_attempt(run, "P1", "2.25.1", [sending("D1")])
        two = ledger.begin_attempt(run, "P1", "2.25.2", [sending("D2")])
        answer_acked(ledger, one, "D1")
        ledger.commit_held()
        assert _seen_elsewhere(ledger, "D1") is S.ACKED
        answer_acked(ledger, two, "D2")
        assert _seen_elsewhere(ledger, "D2") is S.SENDING
    assert _seen_elsewhere(ledger, "D2") is S.ACKED


def test_a_refused_call_undoes_its_own_writes_not_the_held_ones(
    ledger: Ledger, run: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backfill.ledger import store

    select(ledger, run, "D1", "D2", "D3")
    real_take = store._take

    def failing_take(*args: object) -> None:  # fails after the attempt's rows are written
        raise RuntimeError("the database went away")

    with ledger.holding_writes():
        one = ledger.begin_attempt(run, "P1", "2.25.1", [sending("D1")])
        answer_acked(ledger, one, "D1")
        with pytest.raises(TransitionError):
            answer_acked(ledger, one, "D1")  # answered twice
        with pytest.raises(TransitionError):
            # D1 is acked: never sent again; refused after its rows were read and locked
            ledger.begin_attempt(run, "P1", "2.25.3", [sending("D2"), sending("D1")])
        monkeypatch.setattr(store, "_take", failing_take)
        with pytest.raises(RuntimeError):
            ledger.begin_attempt(run, "P1", "2.25.4", [sending("D3")])
        monkeypatch.setattr(store, "_take", real_take)
    assert _seen_elsewhere(ledger, "D1") is S.ACKED
    assert _seen_elsewhere(ledger, "D2") is S.SELECTED
    assert _seen_elsewhere(ledger, "D3") is S.SELECTED  # not left `sending` by a half call
    assert ledger.check_invariant(run).holds


def test_another_threads_calls_are_their_own_transactions(ledger: Ledger, run: int) -> None:
    """Only the thread that holds writes shares its transaction (the sender's event loop)."""
    select(ledger, run, "D1")
    ledger.commit_held()  # nothing held: nothing happens
    errors: list[BaseException] = []

    def elsewhere() -> None:
        try:
            attempt = ledger.begin_attempt(run, "P1", "2.25.1", [sending("D1")])
            answer_acked(ledger, attempt, "D1")
        except BaseException as exc:
            errors.append(exc)

    with ledger.holding_writes():
        other = threading.Thread(target=elsewhere)
        other.start()
        other.join(timeout=60)
        assert not other.is_alive()
    assert not errors
    assert _seen_elsewhere(ledger, "D1") is S.ACKED
