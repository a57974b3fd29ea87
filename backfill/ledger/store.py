"""The ledger: the engine's own state (DESIGN §9) and the only code that changes a document's state.

Every change is one transaction that checks the state machine (`backfill.ledger.states`) first
and writes the attempt log (`bf_attempt`, `bf_attempt_document`) beside the documents it moves:
`sending` is committed before the POST (`begin_attempt`), the answer after it (`end_attempt`).
Transitions are per patient and idempotent on the document's recorded uniqueId and bytes, so a
later worker can take a stalled patient up again. The ledger also answers selection's two facts
(`LedgerFacts`: acknowledged versions, patients without a DMP), in one query per batch of keys.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.sql.elements import ColumnElement, TextClause

from backfill.databases import describe_url, open_engine, translate_errors
from backfill.errors import LedgerMissing, LedgerSchemaError, TransitionError
from backfill.ledger import migrate
from backfill.ledger.lock import RunLock, acquire, advisory_key
from backfill.ledger.queries import DriverStatements, statements
from backfill.ledger.schema import (
    bf_attempt,
    bf_attempt_document,
    bf_document,
    bf_patient,
    bf_run,
)
from backfill.ledger.states import WAITING, DocState, require
from backfill.selection.paris_time import instant_of, shown

__all__ = [
    "AckedDocument",
    "DocResult",
    "Invariant",
    "Ledger",
    "LedgerStatus",
    "PendingDocument",
    "RunInfo",
    "Selected",
    "SendingDocument",
    "WaitingDocument",
]

_BATCH = 1000  # keys per IN list: well under every backend's bound-parameter limit
NO_DMP = "no_dmp"
DMP_OPEN = "open"
DMP_UNKNOWN = "unknown"
_TEXT_MAX = 1000


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _chunks(items: Iterable[Any], size: int = _BATCH) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


# ---- what goes in and out ----------------------------------------------------------------------


class SelectedLike(Protocol):
    """What `record_selected` needs of a selected document (a selection `Decision` will do)."""

    document_id: str
    set_id: str
    version: int
    ipp: str
    replaces_unique_id: str | None


@dataclass(frozen=True, slots=True)
class Selected:
    """A document version selection chose, as the ledger records it."""

    document_id: str
    set_id: str
    version: int
    ipp: str
    replaces_unique_id: str | None = None
    kind: str | None = None
    # The patient's priority (DESIGN §10), computed from its stays by the pipeline each run.
    urgent: bool = (
        False  # a stay in progress, planned within lookahead_days, or admitted this month
    )
    last_stay_at: dt.datetime | None = None  # most recent admission (naive: Paris wall clock)


@dataclass(frozen=True, slots=True)
class PendingDocument:
    """A document the sender must send now. For a `sending` row (left in flight by a crash)
    `unique_id`, `hash` and `size` are those recorded before its POST: resend the same bytes."""

    document_id: str
    set_id: str
    version: int
    ipp: str
    state: DocState
    kind: str | None
    replaces_unique_id: str | None
    unique_id: str | None
    hash: str | None
    size: int | None
    attempts: int


@dataclass(frozen=True, slots=True)
class SendingDocument:
    """One document of a submission set about to be POSTed."""

    document_id: str
    unique_id: str
    hash: str
    size: int
    replaces_unique_id: str | None = None


@dataclass(frozen=True, slots=True)
class DocResult:
    """What an answer means for one document of the attempt.

    `state`: ACKED, RETRY_WAIT (with `next_attempt_at`, None = due now), REJECTED (with its
    code), DEFERRED (patient without a DMP), or SELECTED (cut: not sent, e.g. a set to split).
    """

    document_id: str
    state: DocState
    code: str | None = None
    text: str = ""
    next_attempt_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class AckedDocument:
    """A document the DMP acknowledged to us (DS1.4, reconciliation with the DMP's holdings)."""

    document_id: str
    unique_id: str
    hash: str
    acked_at: dt.datetime


@dataclass(frozen=True)
class RunInfo:
    run_id: int
    mode: str
    rule_name: str | None
    started_at: dt.datetime
    ended_at: dt.datetime | None
    exit_status: int | None
    counts: Mapping[str, Any] | None
    host: str
    pid: int


@dataclass(frozen=True)
class WaitingDocument:
    """The oldest document still owed to the DMP, and why it waits."""

    document_id: str
    ipp: str
    state: DocState
    selected_at: dt.datetime
    attempts: int
    next_attempt_at: dt.datetime | None
    recheck_at: dt.datetime | None
    last_code: str | None
    last_text: str | None

    def why(self) -> str:
        if self.state == DocState.SELECTED:
            return (
                "not attempted yet"
                if not self.attempts
                else "cut before it was sent; resent next run"
            )
        if self.state == DocState.SENDING:
            return "in flight, or cut by a stop or crash: the next run resends the same bytes"
        if self.state == DocState.RETRY_WAIT:
            when = shown(self.next_attempt_at) if self.next_attempt_at else "now"
            return (
                f"retry after {when} ({self.last_code or 'transient'}: {self.last_text or ''})".rstrip(
                    ": )"
                )
                + ")"
            )
        when = self.recheck_at.isoformat(timespec="seconds") if self.recheck_at else "the next run"
        return f"patient without an open DMP ({self.last_code or NO_DMP}); asked again after {when}"

    def as_json(self) -> dict[str, Any]:
        return {
            "document_id": self.document_id,
            "ipp": self.ipp,
            "state": self.state.value,
            "selected_at": self.selected_at.isoformat(),
            "attempts": self.attempts,
            "next_attempt_at": _iso(self.next_attempt_at),
            "recheck_at": _iso(self.recheck_at),
            "last_code": self.last_code,
            "last_text": self.last_text,
            "why": self.why(),
        }


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


@dataclass(frozen=True)
class LedgerStatus:
    """What `backfill status` shows."""

    counts: Mapping[DocState, int]
    oldest_waiting: WaitingDocument | None
    runs: Sequence[RunInfo]

    def as_json(self) -> dict[str, Any]:
        return {
            "counts": {state.value: n for state, n in self.counts.items()},
            "total": sum(self.counts.values()),
            "oldest_waiting": self.oldest_waiting.as_json() if self.oldest_waiting else None,
            "runs": [
                {
                    "run_id": r.run_id,
                    "mode": r.mode,
                    "rule": r.rule_name,
                    "started_at": r.started_at.isoformat(),
                    "ended_at": _iso(r.ended_at),
                    "exit_status": r.exit_status,
                    "counts": r.counts,
                    "host": r.host,
                    "pid": r.pid,
                }
                for r in self.runs
            ],
        }


@dataclass(frozen=True)
class Invariant:
    """DESIGN §9 at the end of a run: selected = acked + rejected + deferred + retry_wait +
    not yet attempted, with the documents cut while `sending` counted on their own.

    `selected` is the run's own tally of the documents it took in charge, kept apart from the
    documents' states, so a lost row shows; `problems` lists every inconsistency found.
    """

    run_id: int
    selected: int
    by_state: Mapping[DocState, int]
    problems: tuple[str, ...] = field(default=())

    @property
    def holds(self) -> bool:
        return not self.problems

    @property
    def not_attempted(self) -> int:
        return self.by_state.get(DocState.SELECTED, 0)

    @property
    def cut_while_sending(self) -> int:
        return self.by_state.get(DocState.SENDING, 0)

    def describe(self) -> str:
        s = self.by_state.get
        line = (
            f"selected {self.selected} = acked {s(DocState.ACKED, 0)} + rejected "
            f"{s(DocState.REJECTED, 0)} + deferred {s(DocState.DEFERRED, 0)} + retry_wait "
            f"{s(DocState.RETRY_WAIT, 0)} + not attempted {self.not_attempted} + cut while "
            f"sending {self.cut_while_sending}"
        )
        return line + (": holds" if self.holds else ": BROKEN — " + "; ".join(self.problems))

    def as_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "selected": self.selected,
            "by_state": {state.value: n for state, n in self.by_state.items()},
            "holds": self.holds,
            "problems": list(self.problems),
        }


# ---- the ledger ----------------------------------------------------------------------------------

d = bf_document.c
a = bf_attempt.c
ad = bf_attempt_document.c
p = bf_patient.c
r = bf_run.c

# Aliased as the `due` condition of sql/ledger_sending.sql names them.
_dd = bf_document.alias("d")
_pp = bf_patient.alias("p")
_STATE_PARAMS = {
    s.name.lower(): s.value
    for s in (DocState.SELECTED, DocState.SENDING, DocState.RETRY_WAIT, DocState.DEFERRED)
}


class _HeldWrites:
    """A write transaction kept open across ledger calls on the thread that opened it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.thread = threading.get_ident()
        self._conn: Connection | None = None

    def connection(self) -> Connection:
        if self._conn is None:
            conn = self.engine.connect().execution_options(ledger_write=True)
            try:
                conn.begin()
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def commit(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.commit()
            finally:
                conn.close()


class Ledger:
    """One ledger database. Open it with `Ledger.open` (create/upgrade) or `Ledger.open_existing`."""

    def __init__(
        self, engine: Engine, url: str, *, clock: Callable[[], dt.datetime] = _now
    ) -> None:
        self.engine = engine
        self.url = url
        self.where = describe_url(url)
        self.clock = clock
        self._lock: RunLock | None = None
        self._sql = statements("ledger_sending.sql", engine.dialect.name)
        # The same statements on the driver's cursor, for the three calls made per POST.
        self._hot = DriverStatements("ledger_sending.sql", engine.dialect)
        self._held: _HeldWrites | None = None

    # -- opening ------------------------------------------------------------------------------

    @classmethod
    def open(cls, url: str, *, clock: Callable[[], dt.datetime] = _now) -> Ledger:
        """The ledger at `url`, created when the database is empty, upgraded to this engine's
        schema; a ledger made by a newer engine is refused (`LedgerSchemaError`, exit 2)."""
        engine = _engine(url)
        ledger = cls(engine, url, clock=clock)
        try:
            with translate_errors("ledger", url), ledger._write() as conn:
                if conn.dialect.name == "postgresql":
                    # Two engines starting on one empty ledger: the second waits for the first.
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_migration_key(conn))))
                migrate.upgrade(conn, ledger.where)
        except BaseException:
            engine.dispose()
            raise
        return ledger

    @classmethod
    def open_existing(cls, url: str, *, clock: Callable[[], dt.datetime] = _now) -> Ledger | None:
        """The ledger at `url` for reading, or None when there is none; never creates nor
        upgrades anything (the audit, `status`). A ledger at another revision is refused."""
        parsed = make_url(url) if "://" in url else None
        if (
            parsed is not None
            and parsed.get_backend_name() == "sqlite"
            and parsed.database not in (None, "", ":memory:")
            and not Path(parsed.database).is_file()
        ):
            return None
        engine = _engine(url, write=False)
        try:
            with translate_errors("ledger", url), engine.connect() as conn:
                if not migrate.has_version_table(conn):
                    engine.dispose()
                    return None
                revision = migrate.current_revision(conn)
        except BaseException:
            engine.dispose()
            raise
        migrate.check_known(revision, describe_url(url))
        head = migrate.head_revision()
        if revision != head:
            engine.dispose()
            raise LedgerSchemaError(
                f"the ledger at {describe_url(url)} has schema revision {revision}, older than "
                f"this engine's {head}: the next `backfill run` upgrades it"
            )
        return cls(engine, url, clock=clock)

    @classmethod
    def open_required(cls, url: str) -> Ledger:
        """`open_existing`, refusing when there is no ledger (commands that act on one)."""
        ledger = cls.open_existing(url)
        if ledger is None:
            raise LedgerMissing(
                f"no ledger at {describe_url(url)} ([ledger] url): nothing has run against it yet"
            )
        return ledger

    def close(self) -> None:
        if self._held is not None:
            self._held.commit()
            self._held = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        self.engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def writers(self) -> int:
        """How many threads the sender gives its ledger calls; 0: it makes them on its event loop.

        SQLite has one writer at a time anyway, and a commit in WAL with synchronous=NORMAL
        waits on no disk (only a checkpoint does, every 1 000 pages by default): handing each call
        to a thread and back cost more than the call (bench/send.py (b): 8 % more documents/s on
        the loop). PostgreSQL's calls wait on the server, so patients' calls overlap in threads."""
        return 0 if self.engine.dialect.name == "sqlite" else 4

    @contextmanager
    def holding_writes(self) -> Iterator[None]:
        """Within the block, on this thread, writes a crash may lose share one transaction.

        Recording an answer (`end_attempt`), an unsendable document or a deferred patient may
        wait: lost in a crash, the documents are still `sending` or due, and the next run
        resends them under the same uniqueIds, which the DMP answers as it did. `begin_attempt`
        must not wait (its POST follows): it commits what is held with its own writes, as do
        `commit_held()` and the end of the block. On SQLite a commit costs more CPU than the
        statements it commits (the pages written to the WAL), and the sender makes its ledger
        calls on its event loop (`writers` is 0), one after the other: half the commits go."""
        if self._held is not None:
            raise RuntimeError("writes are already held")
        held = self._held = _HeldWrites(self.engine)
        try:
            yield
        finally:
            self._held = None
            held.commit()  # what was recorded is true, whatever ends the block

    def commit_held(self) -> None:
        """Commit what `holding_writes` holds now (a reader in another process then sees it)."""
        if self._held is not None:
            self._held.commit()

    @contextmanager
    def _write(self, *, durable: bool = True) -> Iterator[Connection]:
        held = self._held
        if held is not None and held.thread == threading.get_ident():
            conn = held.connection()
            # A savepoint: a call that fails undoes its own writes only. On the driver's cursor:
            # SQLAlchemy's begin_nested() cost more than the call it guarded.
            cursor = conn.connection.cursor()
            try:
                cursor.execute("SAVEPOINT ledger_call")
                try:
                    yield conn
                except BaseException:
                    cursor.execute("ROLLBACK TO SAVEPOINT ledger_call")
                    raise
                finally:
                    cursor.execute("RELEASE SAVEPOINT ledger_call")
            finally:
                cursor.close()
            if durable:
                held.commit()
            return
        # SQLite: BEGIN IMMEDIATE (see _engine), so a read-then-write never meets another writer.
        with self.engine.connect().execution_options(ledger_write=True) as conn, conn.begin():
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with translate_errors("ledger", self.url), self.engine.connect() as conn:
            yield conn

    # -- the run lock and runs ------------------------------------------------------------------

    @contextmanager
    def lock(self, lock_file: Path) -> Iterator[RunLock]:
        """Hold the run lock (file lock on SQLite, advisory lock on PostgreSQL) for the block;
        `LockHeld` (exit 1) names the holder. `start_run` records its run id in the holder."""
        with translate_errors("ledger", self.url):
            held = acquire(self.engine, lock_file)
        self._lock = held
        try:
            yield held
        finally:
            self._lock = None
            held.release()

    def start_run(
        self,
        *,
        mode: str,
        rule_name: str | None = None,
        rule_digest: str | None = None,
        as_of: dt.datetime | None = None,
        options: Mapping[str, object] | None = None,
    ) -> int:
        """Record a run's start; its id. A held lock names the run from now on."""
        with self._write() as conn:
            run_id = conn.execute(
                sa.insert(bf_run)
                .values(
                    mode=mode,
                    rule_name=rule_name,
                    rule_digest=rule_digest,
                    as_of=as_of,
                    options=dict(options or {}),
                    taken=0,
                    started_at=self.clock(),
                    host=socket.gethostname(),
                    pid=os.getpid(),
                )
                .returning(r.run_id)
            ).scalar_one()
        if self._lock is not None:
            self._lock.attach_run(run_id)
        return int(run_id)

    def finish_run(self, run_id: int, *, exit_status: int, counts: Mapping[str, Any]) -> None:
        with self._write() as conn:
            conn.execute(
                sa.update(bf_run)
                .where(r.run_id == run_id)
                .values(ended_at=self.clock(), exit_status=exit_status, counts=dict(counts))
            )

    # -- selection → ledger ----------------------------------------------------------------------

    def record_selected(self, run_id: int, items: Iterable[SelectedLike]) -> int:
        """Record selection's chosen documents in batches; how many this run now has in charge.

        New documents become `selected`. A known one keeps its state: a waiting one (selected,
        retry_wait, deferred, sending) is taken in charge by this run and, unless in flight,
        gets the new replacement target; acked and rejected ones are left alone
        (`retry --rejected` puts the latter back). Each patient's priority (`urgent`,
        `last_stay_at`, DESIGN §10) is refreshed whatever the state of its documents.
        """
        total = 0
        now = self.clock()
        for chunk in _chunks(items):
            unique = {item.document_id: item for item in chunk}
            with self._write() as conn:
                self._refresh_patients(conn, unique.values(), now)
                existing = {
                    row.document_id: row
                    for row in conn.execute(
                        sa.select(d.document_id, d.state, d.run_id).where(
                            d.document_id.in_(list(unique))
                        )
                    )
                }
                new = [
                    {
                        "document_id": item.document_id,
                        "set_id": item.set_id,
                        "version": item.version,
                        "ipp": item.ipp,
                        "kind": getattr(item, "kind", None),
                        "state": DocState.SELECTED.value,
                        "replaces_unique_id": item.replaces_unique_id,
                        "attempts": 0,
                        "selected_at": now,
                        "updated_at": now,
                        "selected_run_id": run_id,
                        "run_id": run_id,
                    }
                    for doc_id, item in unique.items()
                    if doc_id not in existing
                ]
                if new:
                    conn.execute(sa.insert(bf_document), new)
                waiting = [row for row in existing.values() if row.state in WAITING]
                if waiting:
                    conn.execute(
                        sa.update(bf_document)
                        .where(d.document_id == sa.bindparam("b_id"))
                        .values(
                            replaces_unique_id=sa.case(
                                (d.state == DocState.SENDING.value, d.replaces_unique_id),
                                else_=sa.bindparam("b_replaces", type_=sa.String),
                            ),
                            run_id=run_id,
                        ),
                        [
                            {
                                "b_id": row.document_id,
                                "b_replaces": unique[row.document_id].replaces_unique_id,
                            }
                            for row in waiting
                        ],
                    )
                _take(conn, run_id, [None] * len(new) + [row.run_id for row in waiting])
            total += len(new) + len(waiting)
        return total

    def _refresh_patients(
        self, conn: Connection, items: Iterable[SelectedLike], now: dt.datetime
    ) -> None:
        priorities = {
            item.ipp: {
                "ipp": item.ipp,
                "dmp_status": DMP_UNKNOWN,
                "urgent": bool(getattr(item, "urgent", False)),
                "last_stay_at": _instant(getattr(item, "last_stay_at", None)),
                "updated_at": now,
            }
            for item in items
        }
        insert = _upsert_dialect(conn).insert(bf_patient)
        conn.execute(
            insert.on_conflict_do_update(
                index_elements=[p.ipp],
                set_={
                    "urgent": insert.excluded.urgent,
                    "last_stay_at": insert.excluded.last_stay_at,
                    "updated_at": insert.excluded.updated_at,
                },
            ),
            list(priorities.values()),
        )

    # -- what to send now -----------------------------------------------------------------------

    def _due(self, now: dt.datetime) -> TextClause:
        """sql/ledger_sending.sql's `due` condition, over `_dd` and `_pp` (aliases d and p)."""
        return self._sql["due"].bindparams(now=now, **_STATE_PARAMS)

    def pending_patients(
        self,
        now: dt.datetime | None = None,
        *,
        ipps: Collection[str] | None = None,
        run_id: int | None = None,
        page: int = _BATCH,
    ) -> Iterator[str]:
        """Patients with a document due now, streamed in DESIGN §10's order: urgent ones first,
        then by most recent stay (none last), then by ipp. With `run_id`, only documents that
        run has in charge (what its selection chose): a document selection no longer chooses is
        never sent."""
        now = now or self.clock()
        urgent = sa.func.coalesce(_pp.c.urgent, sa.false())
        query = (
            sa.select(_dd.c.ipp, urgent, _pp.c.last_stay_at)
            .select_from(_dd.outerjoin(_pp, _pp.c.ipp == _dd.c.ipp))
            .where(self._due(now))
            .group_by(_dd.c.ipp, urgent, _pp.c.last_stay_at)
        )
        if run_id is not None:
            query = query.where(_dd.c.run_id == run_id)
        if ipps is not None:
            rows = []
            for chunk in _chunks(sorted(set(ipps))):
                with self._read() as conn:
                    rows.extend(conn.execute(query.where(_dd.c.ipp.in_(chunk))).all())
            rows.sort(key=_priority_key)
            yield from (row[0] for row in rows)
            return
        ordered = query.order_by(
            urgent.desc(),
            sa.case((_pp.c.last_stay_at.is_(None), 1), else_=0),
            _pp.c.last_stay_at.desc(),
            _dd.c.ipp,
        ).limit(page)
        # Paged by key, each page its own short read: a cursor held while the caller sends
        # would keep one read transaction open all run (SQLite's WAL could never reset, and
        # grew by tens of KB per document; PostgreSQL's vacuum would wait behind it).
        batch: Sequence[Any] = ()
        while True:
            with self._read() as conn:
                seek = ordered.where(_after(urgent, batch[-1])) if batch else ordered
                batch = conn.execute(seek).all()
            yield from (row[0] for row in batch)
            if len(batch) < page:
                return

    def pending_patient_count(
        self, now: dt.datetime | None = None, *, run_id: int | None = None
    ) -> int:
        """How many patients `pending_patients` would give (a progress display's total)."""
        query = (
            sa.select(sa.func.count(sa.distinct(_dd.c.ipp)))
            .select_from(_dd.outerjoin(_pp, _pp.c.ipp == _dd.c.ipp))
            .where(self._due(now or self.clock()))
        )
        if run_id is not None:
            query = query.where(_dd.c.run_id == run_id)
        with self._read() as conn:
            return int(conn.execute(query).scalar_one())

    def pending_documents(
        self, ipp: str, now: dt.datetime | None = None, *, run_id: int | None = None
    ) -> list[PendingDocument]:
        """This patient's documents to send now: selected, sending (crash leftovers, to resend
        with the recorded uniqueId and bytes), retry_wait due, deferred past their recheck
        (with `run_id`: only those that run has in charge)."""
        now = now or self.clock()
        params = {"ipp": ipp, "run_id": run_id, "now": now, **_STATE_PARAMS}
        with self._read() as conn:
            return [
                PendingDocument(
                    row.document_id,
                    row.set_id,
                    row.version,
                    row.ipp,
                    DocState(row.state),
                    row.kind,
                    row.replaces_unique_id,
                    row.unique_id,
                    row.hash,
                    row.size,
                    row.attempts,
                )
                for row in self._hot.run(conn, "pending_documents", params)
            ]

    # -- transitions ----------------------------------------------------------------------------

    def begin_attempt(
        self, run_id: int, ipp: str, submission_set_id: str, docs: Sequence[SendingDocument]
    ) -> int:
        """Commit `sending` for these documents of one patient before their POST; the attempt id.

        A document a crash left `sending` must come back with the uniqueId, hash and size
        recorded then (the same bytes, so the DMP's idempotency holds), or nothing is written.
        """
        if not docs:
            raise TransitionError("an attempt needs at least one document")
        by_id = {doc.document_id: doc for doc in docs}
        if len(by_id) != len(docs):
            raise TransitionError(f"a document appears twice in submission set {submission_set_id}")
        now = self.clock()
        hot = self._hot
        with self._write() as conn:
            rows: dict[str, Any] = {}
            for chunk in _chunks(by_id):
                rows.update(
                    (row.document_id, row)
                    for row in hot.run(conn, "lock_documents", {"ids": chunk})
                )
            _require_known(rows, by_id, ipp)
            require((doc_id, row.state, DocState.SENDING) for doc_id, row in rows.items())
            changed = [
                doc_id
                for doc_id, row in rows.items()
                if row.state == DocState.SENDING.value
                and (row.unique_id, row.hash, row.size)
                != (by_id[doc_id].unique_id, by_id[doc_id].hash, by_id[doc_id].size)
            ]
            if changed:
                raise TransitionError(
                    f"documents left in flight must be resent with the same uniqueId, hash and size "
                    f"recorded before their first POST: {', '.join(changed[:5])} differ "
                    "(was the DPI content changed in place?)"
                )
            attempt_id = hot.run(
                conn,
                "insert_post",
                {
                    "run_id": run_id,
                    "ipp": ipp,
                    "submission_set_id": submission_set_id,
                    "documents": len(docs),
                    "now": now,
                },
            )[0][0]
            hot.run_many(
                conn,
                "insert_post_document",
                [
                    {
                        "attempt_id": attempt_id,
                        "document_id": doc.document_id,
                        "unique_id": doc.unique_id,
                        "hash": doc.hash,
                        "size": doc.size,
                        "from_state": rows[doc.document_id].state,
                    }
                    for doc in docs
                ],
            )
            hot.run_many(
                conn,
                "mark_sending",
                [
                    {
                        "document_id": doc.document_id,
                        "sending": DocState.SENDING.value,
                        "unique_id": doc.unique_id,
                        "hash": doc.hash,
                        "size": doc.size,
                        "replaces_unique_id": doc.replaces_unique_id,
                        "submission_set_id": submission_set_id,
                        "attempt_id": attempt_id,
                        "now": now,
                        "run_id": run_id,
                    }
                    for doc in docs
                ],
            )
            _take(conn, run_id, [row.run_id for row in rows.values()])
        return int(attempt_id)

    def end_attempt(
        self,
        attempt_id: int,
        *,
        outcome: str,
        http_status: int | None,
        latency: float,
        results: Sequence[DocResult],
        detail: str = "",
    ) -> None:
        """Record the answer to an attempt: each document's new state and the log row, together.

        `results` names every document of the attempt once. A document another attempt has
        taken up since (a stalled worker's answer arriving late) keeps its state; the log
        still records what this answer said about it.
        """
        now = self.clock()
        hot = self._hot
        with self._write(durable=False) as conn:
            members = hot.run(conn, "lock_attempt", {"attempt_id": attempt_id})
            if not members:
                raise TransitionError(f"attempt {attempt_id} is not in the ledger")
            if members[0].ended_at is not None:
                raise TransitionError(f"attempt {attempt_id} already has its answer recorded")
            ipp = members[0].ipp
            given = [res.document_id for res in results]
            if sorted(given) != sorted(row.document_id for row in members):
                named = {row.document_id for row in members}
                raise TransitionError(
                    f"the answer to attempt {attempt_id} must give one result per document of "
                    f"its set: missing {sorted(named - set(given))[:5]}, extra "
                    f"{sorted(set(given) - named)[:5]}, or a document given twice"
                )
            leaving = [res.document_id for res in results if res.state == DocState.SENDING]
            if leaving:
                raise TransitionError(
                    f"an answer cannot leave a document sending: {', '.join(leaving[:5])}"
                )
            current = {
                row.document_id
                for row in members
                if row.attempt_id == attempt_id and row.state == DocState.SENDING.value
            }
            require((res.document_id, DocState.SENDING, res.state) for res in results)
            updates = [
                {
                    "document_id": res.document_id,
                    "state": res.state.value,
                    "code": res.code,
                    "text": res.text[:_TEXT_MAX],
                    "next_attempt_at": (
                        res.next_attempt_at if res.state == DocState.RETRY_WAIT else None
                    ),
                    "acked_at": now if res.state == DocState.ACKED else None,
                    "now": now,
                }
                for res in results
                if res.document_id in current
            ]
            if updates:
                hot.run_many(conn, "record_answer", updates)
            hot.run_many(
                conn,
                "record_answer_document",
                [
                    {
                        "attempt_id": attempt_id,
                        "document_id": res.document_id,
                        "result": res.state.value if res.document_id in current else "superseded",
                        "code": res.code,
                        "text": res.text[:_TEXT_MAX],
                    }
                    for res in results
                ],
            )
            hot.run(
                conn,
                "close_attempt",
                {
                    "attempt_id": attempt_id,
                    "outcome": outcome,
                    "http_status": http_status,
                    "latency": latency,
                    "detail": detail[:_TEXT_MAX] or None,
                    "now": now,
                },
            )
            if any(res.state == DocState.ACKED for res in results):
                hot.run(
                    conn,
                    "patient_has_dmp",
                    {"ipp": ipp, "open": DMP_OPEN, "no_dmp": NO_DMP, "now": now},
                )

    def reject_unsendable(self, run_id: int, document_id: str, code: str, text: str) -> None:
        """A document that cannot be read or built at send time (no POST): → `rejected`, logged."""
        now = self.clock()
        with self._write(durable=False) as conn:
            rows = _lock_rows(conn, [document_id])
            if document_id not in rows:
                raise TransitionError(f"document {document_id} is not in the ledger")
            row = rows[document_id]
            require([(document_id, row.state, DocState.REJECTED)])
            attempt_id = _log_action(
                conn,
                run_id,
                "unsendable",
                row.ipp,
                [(document_id, row.state, code)],
                now,
                result=DocState.REJECTED,
                text=text,
                outcome="rejected",
            )
            conn.execute(
                sa.update(bf_document)
                .where(d.document_id == document_id)
                .values(
                    state=DocState.REJECTED.value,
                    last_code=code,
                    last_text=text[:_TEXT_MAX],
                    next_attempt_at=None,
                    attempt_id=attempt_id,
                    updated_at=now,
                    run_id=run_id,
                )
            )
            _take(conn, run_id, [row.run_id])

    def defer_patient(
        self, ipp: str, until: dt.datetime, code: str, *, run_id: int | None = None
    ) -> int:
        """The DMP has no open DMP for this patient: note it until `until` and defer its waiting
        documents (selected, retry_wait; those in flight get their answer through `end_attempt`).
        How many documents were deferred."""
        now = self.clock()
        with self._write(durable=False) as conn:
            values = {"dmp_status": NO_DMP, "recheck_at": until, "code": code, "updated_at": now}
            insert = _upsert_dialect(conn).insert(bf_patient)
            conn.execute(
                insert.values(ipp=ipp, urgent=False, **values).on_conflict_do_update(
                    index_elements=[p.ipp], set_=values
                )
            )
            sources = [DocState.SELECTED.value, DocState.RETRY_WAIT.value]
            rows = conn.execute(
                sa.select(d.document_id, d.state, d.run_id).where(
                    d.ipp == ipp, d.state.in_(sources)
                )
            ).all()
            if not rows:
                return 0
            require((row.document_id, row.state, DocState.DEFERRED) for row in rows)
            attempt_id = _log_action(
                conn,
                run_id,
                "defer",
                ipp,
                [(row.document_id, row.state, code) for row in rows],
                now,
                result=DocState.DEFERRED,
                text="patient without an open DMP",
                outcome="deferred",
            )
            changes: dict[str, Any] = {
                "state": DocState.DEFERRED.value,
                "last_code": code,
                "last_text": "patient without an open DMP",
                "attempt_id": attempt_id,
                "updated_at": now,
            }
            if run_id is not None:
                changes["run_id"] = run_id
            conn.execute(
                sa.update(bf_document).where(d.ipp == ipp, d.state.in_(sources)).values(**changes)
            )
            if run_id is not None:
                _take(conn, run_id, [row.run_id for row in rows])
            return len(rows)

    # -- operations -----------------------------------------------------------------------------

    def requeue_rejected(self, run_id: int, code: str | None = None) -> int:
        """Put rejected documents (all, or those rejected with `code`) back to `selected` after a
        fix, recorded in the attempt log; how many. Their attempt counter starts again."""
        now = self.clock()
        total = 0
        with self._write() as conn:
            query = sa.select(d.document_id, d.state, d.run_id, d.last_code).where(
                d.state == DocState.REJECTED.value
            )
            if code is not None:
                query = query.where(d.last_code == code)
            rows = conn.execute(query.order_by(d.document_id)).all()
            require((row.document_id, row.state, DocState.SELECTED) for row in rows)
            if not rows:
                return 0
            attempt_id = _log_action(
                conn,
                run_id,
                "requeue",
                None,
                [(row.document_id, row.state, row.last_code) for row in rows],
                now,
                result=DocState.SELECTED,
                text="",
                outcome="requeued",
                detail=f"retry --rejected{f' --code {code}' if code else ''}",
            )
            for chunk in _chunks(rows):
                conn.execute(
                    sa.update(bf_document)
                    .where(
                        d.document_id.in_([row.document_id for row in chunk]),
                        d.state == DocState.REJECTED.value,
                    )
                    .values(
                        state=DocState.SELECTED.value,
                        attempts=0,
                        next_attempt_at=None,
                        attempt_id=attempt_id,
                        updated_at=now,
                        run_id=run_id,
                    )
                )
                total += len(chunk)
            _take(conn, run_id, [row.run_id for row in rows])
        return total

    def retry_rejected(self, lock_file: Path, code: str | None = None) -> tuple[int, int]:
        """`backfill retry --rejected`: under the run lock, one run of mode `retry` that requeues
        the rejected documents (all, or those with `code`); (run id, how many)."""
        with self.lock(lock_file):
            run_id = self.start_run(mode="retry", options={"rejected": True, "code": code})
            try:
                count = self.requeue_rejected(run_id, code)
            except BaseException:
                self.finish_run(run_id, exit_status=1, counts={})
                raise
            self.finish_run(run_id, exit_status=0, counts={"requeued": count})
        return run_id, count

    def counts(self) -> dict[DocState, int]:
        """Documents by state (every state present)."""
        with self._read() as conn:
            found = dict(conn.execute(sa.select(d.state, sa.func.count()).group_by(d.state)).all())
        return {state: int(found.get(state.value, 0)) for state in DocState}

    def status(self, *, recent_runs: int = 5) -> LedgerStatus:
        """Counts by state, the oldest document still waiting and why, the recent runs."""
        with self._read() as conn:
            oldest = conn.execute(
                sa.select(
                    d.document_id,
                    d.ipp,
                    d.state,
                    d.selected_at,
                    d.attempts,
                    d.next_attempt_at,
                    p.recheck_at,
                    d.last_code,
                    d.last_text,
                )
                .select_from(bf_document.outerjoin(bf_patient, p.ipp == d.ipp))
                .where(d.state.in_([s.value for s in WAITING]))
                .order_by(d.selected_at, d.document_id)
                .limit(1)
            ).first()
            runs = conn.execute(
                sa.select(
                    r.run_id,
                    r.mode,
                    r.rule_name,
                    r.started_at,
                    r.ended_at,
                    r.exit_status,
                    r.counts,
                    r.host,
                    r.pid,
                )
                .order_by(r.run_id.desc())
                .limit(recent_runs)
            ).all()
        waiting = None
        if oldest is not None:
            waiting = WaitingDocument(
                oldest.document_id,
                oldest.ipp,
                DocState(oldest.state),
                oldest.selected_at,
                oldest.attempts,
                oldest.next_attempt_at,
                oldest.recheck_at,
                oldest.last_code,
                oldest.last_text,
            )
        return LedgerStatus(self.counts(), waiting, [RunInfo(*row) for row in runs])

    def acked_documents(self) -> Iterator[AckedDocument]:
        """Every document the DMP acknowledged to us, streamed (DS1.4, reconciliation)."""
        query = sa.select(d.document_id, d.unique_id, d.hash, d.acked_at).where(
            d.state == DocState.ACKED.value
        )
        with self._read() as conn:
            result = conn.execution_options(stream_results=True, yield_per=_BATCH).execute(
                query.order_by(d.document_id)
            )
            for row in result:
                yield AckedDocument(row.document_id, row.unique_id, row.hash, row.acked_at)

    # -- facts for selection (backfill.selection.facts.LedgerFacts) --------------------------------

    def acknowledged(self, set_ids: Collection[str]) -> Mapping[str, Mapping[int, str]]:
        """For these document sets: version → uniqueId of each version the DMP acknowledged."""
        found: dict[str, dict[int, str]] = {}
        with self._read() as conn:
            for chunk in _chunks(set_ids):
                # The state is filtered here, not in SQL: with it in the WHERE clause SQLite
                # walks the (state, ipp) index over every acked row instead of the set index.
                rows = conn.execute(
                    sa.select(d.set_id, d.version, d.unique_id, d.state).where(d.set_id.in_(chunk))
                )
                for set_id, version, unique_id, state in rows:
                    if state == DocState.ACKED.value:
                        found.setdefault(set_id, {})[version] = unique_id
        return found

    def without_dmp(self, ipps: Collection[str], as_of: dt.datetime) -> Collection[str]:
        """Those of these patients the DMP said have no open DMP, within the recheck period."""
        found: set[str] = set()
        with self._read() as conn:
            for chunk in _chunks(ipps):
                found.update(
                    conn.execute(
                        sa.select(p.ipp).where(
                            p.ipp.in_(chunk), p.dmp_status == NO_DMP, p.recheck_at > as_of
                        )
                    ).scalars()
                )
        return found

    # -- the end-of-run invariant ---------------------------------------------------------------

    def check_invariant(self, run_id: int) -> Invariant:
        """DESIGN §9's invariant for this run, with every inconsistency found named."""
        problems: list[str] = []
        with self._read() as conn:
            taken = conn.execute(sa.select(r.taken).where(r.run_id == run_id)).scalar_one_or_none()
            if taken is None:
                return Invariant(run_id, 0, {}, (f"run {run_id} is not in the ledger",))
            found = dict(
                conn.execute(
                    sa.select(d.state, sa.func.count()).where(d.run_id == run_id).group_by(d.state)
                ).all()
            )
            by_state: dict[DocState, int] = {}
            for state, n in found.items():
                try:
                    by_state[DocState(state)] = int(n)
                except ValueError:
                    problems.append(f"{n} documents in an unknown state {state!r}")
            if sum(found.values()) != taken:
                problems.append(
                    f"the run took {taken} documents in charge but the ledger holds "
                    f"{sum(found.values())} of them"
                )
            mine = d.run_id == run_id

            def count(query: sa.Select[Any]) -> int:
                return int(conn.execute(query).scalar_one())

            acked = d.state == DocState.ACKED.value
            if n := count(
                sa.select(sa.func.count()).where(
                    mine,
                    acked,
                    sa.or_(d.unique_id.is_(None), d.hash.is_(None), d.acked_at.is_(None)),
                )
            ):
                problems.append(
                    f"{n} acked documents without a uniqueId, hash or acknowledgement time"
                )
            logged_ack = (
                sa.select(ad.document_id)
                .where(ad.document_id == d.document_id, ad.result == DocState.ACKED.value)
                .exists()
            )
            if n := count(sa.select(sa.func.count()).where(mine, acked, ~logged_ack)):
                problems.append(f"{n} acked documents with no acknowledgement in the attempt log")
            twice = (
                sa.select(ad.document_id)
                .join(bf_document, d.document_id == ad.document_id)
                .where(mine, ad.result == DocState.ACKED.value)
                .group_by(ad.document_id)
                .having(sa.func.count() > 1)
            )
            if n := count(sa.select(sa.func.count()).select_from(twice.subquery())):
                problems.append(f"{n} documents acknowledged by more than one attempt")
            open_attempt = (
                sa.select(a.attempt_id)
                .where(a.attempt_id == d.attempt_id, a.ended_at.is_(None), a.action == "post")
                .exists()
            )
            sending = d.state == DocState.SENDING.value
            if n := count(sa.select(sa.func.count()).where(mine, sending, ~open_attempt)):
                problems.append(f"{n} documents sending with no attempt in flight")
            if n := count(
                sa.select(sa.func.count()).where(
                    mine, d.state == DocState.REJECTED.value, d.last_code.is_(None)
                )
            ):
                problems.append(f"{n} rejected documents without a code")
            no_dmp = sa.select(p.ipp).where(p.ipp == d.ipp, p.dmp_status == NO_DMP).exists()
            if n := count(
                sa.select(sa.func.count()).where(mine, d.state == DocState.DEFERRED.value, ~no_dmp)
            ):
                problems.append(f"{n} deferred documents whose patient is not noted without a DMP")
        return Invariant(run_id, int(taken), by_state, tuple(problems))


# ---- helpers of one transaction ---------------------------------------------------------------------


def _lock_rows(conn: Connection, ids: list[str]) -> dict[str, Any]:
    """The current rows of these documents, locked until the transaction ends (PostgreSQL;
    SQLite's BEGIN IMMEDIATE already excludes other writers)."""
    rows: dict[str, Any] = {}
    for chunk in _chunks(ids):
        query = (
            sa.select(
                d.document_id, d.ipp, d.state, d.unique_id, d.hash, d.size, d.run_id, d.attempt_id
            )
            .where(d.document_id.in_(chunk))
            .with_for_update()
        )
        rows.update((row.document_id, row) for row in conn.execute(query))
    return rows


def _require_known(rows: Mapping[str, Any], wanted: Iterable[str], ipp: str) -> None:
    missing = [doc_id for doc_id in wanted if doc_id not in rows]
    if missing:
        raise TransitionError(f"documents not in the ledger: {', '.join(missing[:5])}")
    strangers = [doc_id for doc_id, row in rows.items() if row.ipp != ipp]
    if strangers:
        raise TransitionError(
            f"a submission set holds one patient's documents only: {', '.join(strangers[:5])} "
            f"belong to another patient than {ipp}"
        )


def _take(conn: Connection, run_id: int, owners: Sequence[int | None]) -> None:
    """Keep each run's tally of the documents in its charge (the invariant's `selected`):
    documents this run takes from earlier runs leave those runs' tallies."""
    moved = Counter(owner for owner in owners if owner != run_id)
    gained = sum(moved.values())
    if not gained:
        return
    # In one order (PostgreSQL runs several patients' transactions at once: no lock cycle).
    for owner, n in sorted(moved.items(), key=lambda item: item[0] or 0):
        if owner is not None:
            conn.execute(sa.update(bf_run).where(r.run_id == owner).values(taken=r.taken - n))
    conn.execute(sa.update(bf_run).where(r.run_id == run_id).values(taken=r.taken + gained))


def _log_action(
    conn: Connection,
    run_id: int | None,
    action: str,
    ipp: str | None,
    documents: Sequence[tuple[str, str, str | None]],
    now: dt.datetime,
    *,
    result: DocState,
    text: str,
    outcome: str,
    detail: str | None = None,
) -> int:
    """One finished attempt-log row for an action without a POST, with its documents
    (document_id, state before, code)."""
    attempt_id = conn.execute(
        sa.insert(bf_attempt)
        .values(
            run_id=run_id,
            action=action,
            ipp=ipp,
            documents=len(documents),
            outcome=outcome,
            detail=detail,
            started_at=now,
            ended_at=now,
        )
        .returning(a.attempt_id)
    ).scalar_one()
    for chunk in _chunks(documents):
        conn.execute(
            sa.insert(bf_attempt_document),
            [
                {
                    "attempt_id": attempt_id,
                    "document_id": doc_id,
                    "from_state": state,
                    "result": result.value,
                    "code": code,
                    "text": text[:_TEXT_MAX] or None,
                }
                for doc_id, state, code in chunk
            ],
        )
    return int(attempt_id)


def _upsert_dialect(conn: Connection) -> Any:
    """The dialect module whose `insert` has `on_conflict_do_update` (both backends have one)."""
    return postgresql if conn.dialect.name == "postgresql" else sqlite


def _instant(value: dt.datetime | None) -> dt.datetime | None:
    """An aware instant; a naive datetime is Paris wall-clock time, as the DPI stores it."""
    if value is None or value.tzinfo is not None:
        return value
    return instant_of(value)


def _after(urgent: ColumnElement[Any], last: Sequence[Any]) -> ColumnElement[bool]:
    """Rows after `last` (ipp, urgent, last stay) in `pending_patients`' order: urgent first,
    then the most recent stay, no stay last, then ipp."""
    ipp, was_urgent, stay = last
    stay_col = _pp.c.last_stay_at
    if stay is None:
        same_urgency_after = sa.and_(stay_col.is_(None), _dd.c.ipp > ipp)
    else:
        same_urgency_after = sa.or_(
            stay_col.is_(None),
            stay_col < stay,
            sa.and_(stay_col == stay, _dd.c.ipp > ipp),
        )
    if was_urgent:
        return sa.or_(urgent.is_(False), sa.and_(urgent.is_(True), same_urgency_after))
    return sa.and_(urgent.is_(False), same_urgency_after)


def _priority_key(row: Sequence[Any]) -> tuple[bool, bool, float, str]:
    ipp, urgent, last = row
    return (not urgent, last is None, -last.timestamp() if last else 0.0, ipp)


def _migration_key(conn: Connection) -> int:
    return advisory_key(conn) ^ 0x5A5A


def _engine(url: str, *, write: bool = True) -> Engine:
    """An engine on the ledger; SQLite gets WAL, a busy timeout, foreign keys, and
    BEGIN IMMEDIATE for writing transactions (so a read-then-write never deadlocks)."""
    engine = open_engine(url, "ledger", check=False)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
            cursor = dbapi_conn.cursor()
            if write:
                cursor.execute("PRAGMA journal_mode=WAL")
                # WAL + NORMAL: a commit survives the process being killed (what the crash
                # tests do); only an OS crash may lose the last commits, and then the sender
                # resends under the same uniqueIds, which the DMP's idempotency absorbs.
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            immediate = conn.get_execution_options().get("ledger_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    elif engine.dialect.name == "postgresql" and write:

        @event.listens_for(engine, "connect")
        def _on_pg_connect(dbapi_conn: Any, record: Any) -> None:
            # The same bargain as SQLite's synchronous=NORMAL above: a commit does not wait for
            # the server's disk, so only a crash of the PostgreSQL server itself may lose the
            # last fraction of a second of them, after which the sender resends under the same
            # uniqueIds and bytes (the DMP's idempotency). Waiting for the disk twice per POST
            # halved the sender's speed on a PostgreSQL ledger.
            with dbapi_conn.cursor() as cursor:
                cursor.execute("SET synchronous_commit TO off")
            dbapi_conn.commit()

    return engine
