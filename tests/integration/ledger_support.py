"""Driving a ledger through its API to a wanted state, for the ledger tests."""

from __future__ import annotations

import datetime as dt
import hashlib

from backfill.ledger import DocResult, DocState, Ledger, Selected, SendingDocument

NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)


def sending(document_id: str, *, content: bytes = b"cda") -> SendingDocument:
    """What the builder would give for this document: a deterministic uniqueId and hash."""
    return SendingDocument(
        document_id,
        f"2.25.{int(hashlib.sha1(document_id.encode()).hexdigest()[:12], 16)}",
        hashlib.sha1(content + document_id.encode()).hexdigest(),
        len(content) + len(document_id),
    )


def select(ledger: Ledger, run_id: int, *document_ids: str, ipp: str = "P1") -> None:
    ledger.record_selected(run_id, [Selected(doc, doc, 1, ipp) for doc in document_ids])


def drive(
    ledger: Ledger, run_id: int, document_id: str, state: DocState, *, ipp: str = "P1"
) -> None:
    """Record `document_id` (its own set, version 1) as selected and move it to `state` the way a run would."""
    select(ledger, run_id, document_id, ipp=ipp)
    if state == DocState.SELECTED:
        return
    if state == DocState.DEFERRED:
        ledger.defer_patient(ipp, NOW + dt.timedelta(days=30), "XDSUnknownPatientId", run_id=run_id)
        return
    attempt = ledger.begin_attempt(
        run_id,
        ipp,
        f"2.25.9{int(hashlib.sha1(document_id.encode()).hexdigest()[:8], 16)}",
        [sending(document_id)],
    )
    if state == DocState.SENDING:
        return
    ledger.end_attempt(
        attempt,
        outcome=state.value,
        http_status=200,
        latency=0.01,
        results=[
            DocResult(
                document_id,
                state,
                code={"rejected": "XDSRegistryMetadataError", "retry_wait": "XDSRegistryBusy"}.get(
                    state.value
                ),
                text="test",
                next_attempt_at=NOW if state == DocState.RETRY_WAIT else None,
            )
        ],
    )


def ack(ledger: Ledger, run_id: int, ipp: str, *document_ids: str, set_id: str = "2.25.1") -> None:
    """One POST of these documents that the DMP acknowledges."""
    attempt = ledger.begin_attempt(run_id, ipp, set_id, [sending(doc) for doc in document_ids])
    answer_acked(ledger, attempt, *document_ids)


def answer_acked(ledger: Ledger, attempt: int, *document_ids: str) -> None:
    """The DMP's answer to `attempt`: these documents are stored."""
    ledger.end_attempt(
        attempt,
        outcome="done",
        http_status=200,
        latency=0.01,
        results=[DocResult(doc, DocState.ACKED) for doc in document_ids],
    )


def busy(
    ledger: Ledger, run_id: int, ipp: str, document_id: str, until: dt.datetime, *, set_id: str
) -> None:
    """One POST of this document that the DMP answers 503: it waits in retry_wait until `until`."""
    attempt = ledger.begin_attempt(run_id, ipp, set_id, [sending(document_id)])
    ledger.end_attempt(
        attempt,
        outcome="transient",
        http_status=503,
        latency=0.1,
        results=[DocResult(document_id, DocState.RETRY_WAIT, "HTTP 503", "busy", until)],
    )


def state_of(ledger: Ledger, document_id: str) -> DocState:
    import sqlalchemy as sa

    from backfill.ledger.schema import bf_document

    with ledger.engine.connect() as conn:
        value = conn.execute(
            sa.select(bf_document.c.state).where(bf_document.c.document_id == document_id)
        ).scalar_one()
    return DocState(value)
