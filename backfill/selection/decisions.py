"""The decision stream: one streamed query, the ledger's and file system's facts merged, one `Decision` per document.

A document's final reason is the lowest-ranked of all that apply (DESIGN §5): the query gives
the first the DPI can decide; a fact (acknowledged by us → 4, no DMP → 15, a `file:` content
check → 16/18/19) replaces it only when it ranks lower, so facts are looked up only for rows
they could change. Facts come in one batch per fetched chunk of rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from backfill.errors import DataSourceError
from backfill.selection.compiler import PDF_MEDIA_TYPE, Window, compile_decisions
from backfill.selection.facts import InMemoryLedgerFacts, LedgerFacts, check_file_content
from backfill.selection.reasons import SELECTED, Reason, by_rank
from backfill.selection.rules import Rule

__all__ = ["Decision", "decide"]

_NONE = 99  # rank of "no failing reason", above every reason
_CONTENT_FROM_FILE = Reason.CONTENT_MISSING.rank  # file checks can give 16 and above


@dataclass(frozen=True, slots=True)
class Decision:
    """What the engine does with one document version, and what it needs to know to do it."""

    document_id: str
    set_id: str
    version: int
    ipp: str
    stay_id: str | None
    kind: str
    created_at: dt.datetime
    reason: Reason | None
    replaces_unique_id: str | None
    identity_status: str | None
    mime_type: str | None
    content_uri: str | None
    # The reason the document would have if its patient's identity were qualified and complete
    # (only computed for the identity worklist; None otherwise or when it would be selected).
    reason_identity_aside: Reason | None = None
    identity_aside_computed: bool = False

    @property
    def selected(self) -> bool:
        return self.reason is None

    @property
    def decision(self) -> str:
        """`selected` or the reason code, as written in the decision CSV."""
        return SELECTED if self.reason is None else self.reason.value

    @property
    def unlocked_by_identity(self) -> bool:
        """Blocked only by its patient's identity (a worklist line)."""
        return (
            self.identity_aside_computed
            and self.reason is not None
            and self.reason.rank in _IDENTITY_RANKS
            and self.reason_identity_aside is None
        )


_IDENTITY_RANKS = frozenset(range(Reason.IDENTITY_NOT_QUALIFIED.rank, Reason.NO_DMP.rank))


def decide(
    bind: Engine | Connection,
    rule: Rule,
    as_of: dt.datetime,
    *,
    window: Window | None = None,
    facts: LedgerFacts | None = None,
    content_root: Path | None = None,
    fetch_size: int = 5000,
    identity_aside: bool = False,
    ordered: bool = True,
) -> Iterator[Decision]:
    """Every document version of the DPI with its decision, streamed in `fetch_size` chunks."""
    if as_of.tzinfo is None:
        raise ValueError("as_of must be an aware instant")
    query = compile_decisions(
        rule, as_of, window=window, identity_aside=identity_aside, ordered=ordered
    )
    options: dict[str, Any] = {
        "rule": rule,
        "as_of": as_of,
        "ledger": facts if facts is not None else InMemoryLedgerFacts(),
        "content_root": content_root,
        "fetch_size": fetch_size,
    }
    if isinstance(bind, Engine):
        try:
            with bind.connect() as conn:
                yield from _stream(conn, query, **options)
        except sa.exc.OperationalError as exc:
            raise DataSourceError(f"the DPI database cannot be read: {exc.orig}") from None
        return
    yield from _stream(bind, query, **options)


def _stream(
    conn: Connection,
    query: sa.Select[Any],
    *,
    rule: Rule,
    as_of: dt.datetime,
    ledger: LedgerFacts,
    content_root: Path | None,
    fetch_size: int,
) -> Iterator[Decision]:
    result = conn.execution_options(stream_results=True, yield_per=fetch_size).execute(query)
    columns = result.keys()
    aside = "rank_identity_aside" in columns
    for rows in result.partitions():
        yield from _merge(
            rows, rule=rule, as_of=as_of, ledger=ledger, content_root=content_root, aside=aside
        )


def _merge(
    rows: Sequence[sa.Row[Any]],
    *,
    rule: Rule,
    as_of: dt.datetime,
    ledger: LedgerFacts,
    content_root: Path | None,
    aside: bool,
) -> Iterator[Decision]:
    ranks = [
        (row.rank or _NONE, (row.rank_identity_aside or _NONE) if aside else _NONE) for row in rows
    ]
    could_be_acked = {
        row.set_id for row, (rank, r2) in zip(rows, ranks, strict=True) if max(rank, r2) > 3
    }
    acked = ledger.acknowledged(could_be_acked) if could_be_acked else {}
    could_lack_dmp = {
        row.ipp
        for row, (rank, r2) in zip(rows, ranks, strict=True)
        if max(rank, r2) > Reason.NO_DMP.rank
    }
    no_dmp = set(ledger.without_dmp(could_lack_dmp, as_of)) if could_lack_dmp else set()
    for row, (rank, rank_aside) in zip(rows, ranks, strict=True):
        fact = _NONE
        in_set = acked.get(row.set_id)
        replaces = row.replaces_unique_id
        if in_set:
            if row.version in in_set:
                fact = Reason.ALREADY_IN_DMP.rank
            earlier = [v for v in in_set if v < row.version]
            if earlier:
                # Ours or the live feed's uniqueId, whichever belongs to the later version
                # (ours on a tie: we sent it after the live feed did).
                ours = max(earlier)
                if replaces is None or row.replaces_version is None or ours >= row.replaces_version:
                    replaces = in_set[ours]
        if fact == _NONE and row.ipp in no_dmp:
            fact = Reason.NO_DMP.rank
        if (
            fact == _NONE
            and not row.has_content
            and row.content_uri
            and row.content_uri.strip()
            and max(rank, rank_aside) > _CONTENT_FROM_FILE
        ):
            file_reason = check_file_content(
                row.content_uri,
                pdf=(row.mime_type or "").lower() == PDF_MEDIA_TYPE,
                max_bytes=rule.max_content_bytes,
                content_root=content_root,
            )
            if file_reason is not None:
                fact = file_reason.rank
        final = min(rank, fact)
        final_aside = min(rank_aside, fact)
        yield Decision(
            document_id=row.document_id,
            set_id=row.set_id,
            version=row.version,
            ipp=row.ipp,
            stay_id=row.stay_id,
            kind=row.kind,
            created_at=row.created_at,
            reason=None if final == _NONE else by_rank(final),
            replaces_unique_id=replaces if final == _NONE else None,
            identity_status=row.identity_status,
            mime_type=row.mime_type,
            content_uri=row.content_uri,
            reason_identity_aside=None if final_aside == _NONE else by_rank(final_aside),
            identity_aside_computed=aside,
        )
