"""The decision stream: one streamed query, the ledger's and file system's facts merged, one `Decision` per document.

A document's final reason is the lowest-ranked of all that apply (DESIGN §5): the query gives
the first the DPI can decide (`beyond_kind_limit` included: the N most recent per kind are
counted in SQL, before these facts); a fact (acknowledged by us → 4, no DMP → 15, a `file:` content
check → 16/18/19, an inline PDF's check → 19) replaces it only when it ranks lower, so facts are
looked up only for rows they could change. Facts come in one batch per fetched chunk of rows.
The inline PDF check comes last, in one query by document id: it reads whole blobs, and after a
complete run nearly every PDF is already acknowledged (4).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from backfill.errors import DataSourceError
from backfill.selection.codes import check_rule_codes
from backfill.selection.compiler import (
    PDF_MEDIA_TYPE,
    Environment,
    Window,
    compile_decisions,
    corrupt_pdfs_query,
    pdf_checked_in_query,
)
from backfill.selection.facts import InMemoryLedgerFacts, LedgerFacts, check_file_content
from backfill.selection.paris_time import PARIS
from backfill.selection.reasons import SELECTED, Reason
from backfill.selection.rules import Rule
from connectors.dpi.contract import dpi_document, present_optional_columns

__all__ = ["Decision", "decide"]

_NONE = 99  # rank of "no failing reason", above every reason
_CONTENT_FROM_FILE = Reason.CONTENT_MISSING.rank  # file checks can give 16 and above


@dataclass(slots=True)
class Decision:
    """What the engine does with one document version, and what it needs to know to do it.

    Not frozen: a million of them are made per run, and a frozen dataclass's `__init__` costs
    three times as much. Treat it as a value all the same.
    """

    document_id: str
    set_id: str
    version: int
    ipp: str
    stay_id: str | None
    kind: str
    created_at: dt.datetime | None
    """Paris wall clock, naive; None when the DPI's value is no date (`invalid_document_data`)"""
    reason: Reason | None
    replaces_unique_id: str | None
    identity_status: str | None
    mime_type: str | None
    content_uri: str | None
    # The reason the document would have if its patient's identity were qualified and complete
    # (only computed for the identity worklist; None otherwise or when it would be selected).
    reason_identity_aside: Reason | None = None
    identity_aside_computed: bool = False
    # The patient is a minor at as_of; and the rule's [minors] policy for this document's unit
    # says to send it invisible to the legal representatives (the builder sets the code).
    minor: bool = False
    hide_from_legal_rep: bool = False

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


_IDENTITY_RANKS = frozenset(
    [
        *range(Reason.IDENTITY_NOT_QUALIFIED.rank, Reason.NO_DMP.rank),
        Reason.INS_SHARED.rank,
        Reason.INS_TRAITS_INCONSISTENT.rank,
    ]
)


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
    environment: Environment = "test",
    selected_only: bool = False,
) -> Iterator[Decision]:
    """Every document version of the DPI with its decision, streamed in `fetch_size` chunks.

    With `selected_only`, only the selected ones: what the sender keeps, without fetching and
    merging the rows it would drop (most of a DPI; after a complete run, nearly all).

    `environment` is the DMP's (`[dmp] environment`): INS OIDs of the other are refused.
    A rule whose per-kind filters name a unit, specialty or setting code the DPI does not have
    is refused first (`RuleError`, `codes.check_rule_codes`).
    """
    if as_of.tzinfo is None:
        raise ValueError("as_of must be an aware instant")
    if selected_only and identity_aside:
        raise ValueError("the identity worklist needs the documents that are not selected")
    options: dict[str, Any] = {
        "rule": rule,
        "as_of": as_of,
        "ledger": facts if facts is not None else InMemoryLedgerFacts(),
        "content_root": content_root,
        "fetch_size": fetch_size,
        "selected_only": selected_only,
    }
    compile_options: dict[str, Any] = {
        "window": window,
        "identity_aside": identity_aside,
        "ordered": ordered,
        "environment": environment,
        "selected_only": selected_only,
    }
    if isinstance(bind, Engine):
        try:
            with bind.connect() as conn:
                check_rule_codes(conn, rule)
                query = compile_decisions(
                    rule, as_of, present=present_optional_columns(conn), **compile_options
                )
                yield from _stream(conn, query, **options)
        except (sa.exc.OperationalError, sa.exc.ProgrammingError) as exc:
            raise DataSourceError(
                f"the DPI database cannot be read: {exc.orig} (it must offer the five relations "
                "of the DPI contract, see docs/mapping-a-dpi.md)"
            ) from None
        except (ValueError, TypeError):
            # The value is not quoted: it may be a birth date or a name.
            raise DataSourceError(
                "a DPI row holds a value its column's type cannot hold (for instance a date or "
                "timestamp that is not one); fix the row or the view of the DPI contract"
            ) from None
        return
    check_rule_codes(bind, rule)
    query = compile_decisions(
        rule, as_of, present=present_optional_columns(bind), **compile_options
    )
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
    selected_only: bool,
) -> Iterator[Decision]:
    if conn.dialect.name == "postgresql":
        # A server-side cursor plans for its first 10 % by default; we read every row.
        conn.exec_driver_sql("SET LOCAL cursor_tuple_fraction = 1.0")
    result = conn.execution_options(stream_results=True, yield_per=fetch_size).execute(query)
    aside = "rank_identity_aside" in result.keys()  # noqa: SIM118  (a result is not a mapping)
    merge = _Merge(conn, rule, as_of, ledger, content_root, aside)
    # fetchmany, not partitions(): that generator holds a chunk while it fetches the next, and
    # two chunks in memory at once were the run's peak (ours is let go first).
    while rows := result.fetchmany(fetch_size):
        if selected_only:
            yield from (decision for decision in merge(rows) if decision.reason is None)
        else:
            yield from merge(rows)
        del rows


# The query's columns, in `compile_decisions` order.
(_ID, _SET, _VERSION, _IPP, _STAY, _KIND, _CREATED, _MIME, _URI, _HAS_CONTENT, _STATUS, _RANK,
 _REPLACES, _MINOR, _HIDE) = range(15)  # fmt: skip
_RANK_ASIDE = 15
_REASON_AT: list[Reason | None] = [None] * (_NONE + 1)
for _reason in Reason:
    _REASON_AT[_reason.rank] = _reason
_ACKED = Reason.ALREADY_IN_DMP.rank
_NO_DMP = Reason.NO_DMP.rank
_CORRUPT = Reason.CONTENT_CORRUPT.rank
_IDS_PER_QUERY = 500
_INVALID = Reason.INVALID_DOCUMENT_DATA.rank
_DATED = frozenset(
    r.rank
    for r in (
        Reason.FUTURE_DATED,
        Reason.OLDER_THAN_DEPTH,
        Reason.BEFORE_COMPUTERIZATION,
        Reason.BEYOND_KIND_LIMIT,
    )
)


def _wall_clock(value: object) -> dt.datetime | None:
    """created_at as the DPI gave it (a datetime, or text on SQLite); None if it is no date."""
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time())
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed.astimezone(PARIS).replace(tzinfo=None) if parsed.tzinfo else parsed


def _undated(rank: int) -> int:
    """The reason of a document without a readable date: its date-free reason, if it has one."""
    return _INVALID if rank == _NONE or rank in _DATED else rank


class _Merge:
    """Turns one fetched chunk of rows into decisions, with one ledger lookup per kind of fact."""

    def __init__(
        self,
        conn: Connection,
        rule: Rule,
        as_of: dt.datetime,
        ledger: LedgerFacts,
        content_root: Path | None,
        aside: bool,
    ) -> None:
        self.conn, self.rule, self.as_of, self.ledger = conn, rule, as_of, ledger
        self.content_root, self.aside = content_root, aside
        self.pdf_in_query = pdf_checked_in_query(rule)
        self.corrupt_query = corrupt_pdfs_query()

    def __call__(self, rows: Sequence[Sequence[Any]]) -> Iterator[Decision]:
        aside = self.aside
        ranks = [
            (row[_RANK] or _NONE, (row[_RANK_ASIDE] or _NONE) if aside else _NONE) for row in rows
        ]
        sets: set[str] = set()
        ipps: set[str] = set()
        for row, (rank, rank_aside) in zip(rows, ranks, strict=True):
            worst = max(rank, rank_aside)
            if worst > _ACKED:
                sets.add(row[_SET])
                if worst > _NO_DMP:
                    ipps.add(row[_IPP])
        acked = self.ledger.acknowledged(sets) if sets else {}
        no_dmp = set(self.ledger.without_dmp(ipps, self.as_of)) if ipps else set()
        merged: list[tuple[int, int, str | None]] = []
        pdfs: list[str] = []  # inline PDFs whose check could still change their decision
        for row, (sql_rank, sql_rank_aside) in zip(rows, ranks, strict=True):
            rank, rank_aside = sql_rank, sql_rank_aside
            replaces = row[_REPLACES]
            fact = _NONE
            if acked and row[_SET] in acked:
                fact, replaces = self._acked(row, acked[row[_SET]], replaces)
            if fact == _NONE and no_dmp and row[_IPP] in no_dmp:
                fact = _NO_DMP
            if fact == _NONE and row[_URI] and not row[_HAS_CONTENT]:
                fact = self._file(row, max(rank, rank_aside))
            if fact != _NONE:
                rank, rank_aside = min(rank, fact), min(rank_aside, fact)
            elif (
                max(rank, rank_aside) > _CORRUPT
                and row[_HAS_CONTENT]
                and row[_KIND] not in self.pdf_in_query
                and (row[_MIME] or "").lower() == PDF_MEDIA_TYPE
            ):
                pdfs.append(row[_ID])
            merged.append((rank, rank_aside, replaces))
        corrupt = self._corrupt(pdfs) if pdfs else set()
        for row, (merged_rank, merged_aside, replaces) in zip(rows, merged, strict=True):
            rank, rank_aside = merged_rank, merged_aside
            if corrupt and row[_ID] in corrupt:
                rank, rank_aside = min(rank, _CORRUPT), min(rank_aside, _CORRUPT)
            created = _wall_clock(row[_CREATED])
            if created is None:
                # Compared as text in SQL, such a value decided nothing that depends on a date.
                rank, rank_aside = _undated(rank), _undated(rank_aside)
            yield Decision(
                row[_ID],
                row[_SET],
                row[_VERSION],
                row[_IPP],
                row[_STAY],
                row[_KIND],
                created,
                _REASON_AT[rank],
                replaces if rank == _NONE else None,
                row[_STATUS],
                row[_MIME],
                row[_URI],
                _REASON_AT[rank_aside],
                aside,
                bool(row[_MINOR]),
                rank == _NONE and bool(row[_HIDE]),
            )

    def _corrupt(self, ids: list[str]) -> set[str]:
        """Those of `ids` whose inline PDF is corrupt, a few hundred per query (Oracle takes
        at most 1 000 values in an IN list, SQL Server 2 100 parameters)."""
        found: set[str] = set()
        for start in range(0, len(ids), _IDS_PER_QUERY):
            chunk = ids[start : start + _IDS_PER_QUERY]
            found.update(self.conn.execute(self.corrupt_query, {"ids": chunk}).scalars())
        return found

    def _acked(
        self, row: Sequence[Any], in_set: Mapping[int, str], replaces: str | None
    ) -> tuple[int, str | None]:
        version = row[_VERSION]
        fact = _ACKED if version in in_set else _NONE
        earlier = [v for v in in_set if v < version]
        if earlier:
            ours = max(earlier)
            # Ours or the live feed's uniqueId, whichever belongs to the later version (ours on
            # a tie: we sent it after the live feed did). Rare, so asked only here.
            if replaces is None or ours >= self._live_version(row[_SET], version):
                replaces = in_set[ours]
        return fact, replaces

    def _live_version(self, set_id: str, below: int) -> int:
        d = dpi_document.c
        query = sa.select(sa.func.max(d.version)).where(
            d.set_id == set_id, d.version < below, d.dmp_unique_id.is_not(None)
        )
        return self.conn.execute(query).scalar_one() or 0

    def _file(self, row: Sequence[Any], worst: int) -> int:
        if worst <= _CONTENT_FROM_FILE or not row[_URI].strip():
            return _NONE
        reason = check_file_content(
            row[_URI],
            pdf=(row[_MIME] or "").lower() == PDF_MEDIA_TYPE,
            max_bytes=self.rule.max_content_bytes,
            content_root=self.content_root,
        )
        return _NONE if reason is None else reason.rank
