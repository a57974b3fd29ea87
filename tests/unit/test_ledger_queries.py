"""The ledger's SQL files: named statements parsed as written, for both dialects."""

from __future__ import annotations

import pytest

from backfill.ledger.queries import parse_named, statements
from backfill.ledger.states import DocState


def test_each_named_block_is_its_statement_without_comments() -> None:
    text = "-- header\n-- name: one\n-- what it does\nSELECT 1\n\n-- name: two\nSELECT :x\n"
    assert parse_named(text) == {"one": "SELECT 1", "two": "SELECT :x"}


def test_a_name_given_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="'one' is named twice"):
        parse_named("-- name: one\nSELECT 1\n-- name: one\nSELECT 2\n")


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_rows_are_locked_on_postgresql_only(dialect: str) -> None:
    sending = statements("ledger_sending.sql", dialect)
    locking = str(sending["lock_documents"])
    assert ("FOR UPDATE" in locking) is (dialect == "postgresql")
    assert "{for_update}" not in locking


def test_the_state_names_the_sender_binds_are_the_state_machine_s() -> None:
    """pending_documents takes its states as parameters named after DocState's members."""
    wanted = {"selected", "sending", "retry_wait", "deferred"}
    bound = set(statements("ledger_sending.sql", "sqlite")["pending_documents"]._bindparams)
    assert wanted <= bound
    assert wanted <= {state.name.lower() for state in DocState}


def test_a_named_condition_is_written_once_and_included_where_named() -> None:
    """`due` decides what is sent; the patients to take and their documents share its text."""
    sending = statements("ledger_sending.sql", "sqlite")
    due = str(sending["due"])
    assert "d.next_attempt_at" in due
    assert "p.recheck_at" in due
    assert due in str(sending["pending_documents"])
    assert "{due}" not in str(sending["pending_documents"])
