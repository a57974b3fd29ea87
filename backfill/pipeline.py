"""The sender (DESIGN §3, §7, §9): selection → ledger → read, build → DMP → ledger, per patient.

    summary = await run(settings, mode="nightly", rule=rule, as_of=now)
    summary.exit_code        # 0 done · 1 failure · 2 configuration/authentication · 3 work left

A run streams selection's decisions into the ledger (each patient with its priority, DESIGN §10),
then takes the patients the ledger says are due, most urgent first, and for each one: reads and
builds its documents in a worker pool, looks up the DMP's entryUUID of every document it
replaces (ITI-18), splits them into submission sets, and sends each set through the shared
`Pacer` with tenacity's retries. `sending` is committed before each POST (`before_post`) and the
answer after it, so a crash at any moment leaves a ledger the next run finishes from, resending
the same uniqueIds and bytes. Every document taken in charge ends the run acked, rejected (with
its code), deferred (patient without a DMP), retry_wait (with its next_attempt_at), not yet
attempted, or — only when a stop cut a request — sending; the invariant is checked at the end.

Stops: a fatal answer (authentication, TLS, wrong endpoint) stops everything at once with exit 2
and marks nothing failed; SIGINT/SIGTERM, `--until`, `--max-documents` and a DMP asking for a
longer pause than `dmp.max_retry_wait` stop taking patients, let requests in flight finish for a
few seconds, and end with exit 3. `--dry-run` selects, reads, builds and validates without
writing the ledger or sending anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import random
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Collection, Coroutine, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Gauge, write_to_textfile
from sqlalchemy.engine import Engine

from backfill.cda_workers import BuildPool, PoolKind
from backfill.config import Settings
from backfill.databases import open_engine, translate_errors
from backfill.dmp_session import async_dmp_client
from backfill.documents import BuildOutcome
from backfill.errors import BackfillError, ConfigError
from backfill.indicator import Ds14, percent
from backfill.indicator_sources import month_to_date_ds14
from backfill.ledger import DocResult, DocState, Invariant, Ledger, PendingDocument, Selected
from backfill.ledger import SendingDocument as LedgerSending
from backfill.logs import get_logger
from backfill.pacing import DmpWaitTooLong, JitteredBackoff, Pacer, PacingSettings, Signal
from backfill.pacing import retrying as retry_loop
from backfill.priority import Priority, patient_priorities
from backfill.selection import Decision, Rule, Window, check_rule_codes, decide
from backfill.selection.paris_time import PARIS
from backfill.submission_sets import split_sets
from backfill.visiting import visiting_ipps
from cda.build import BuiltDocument
from cda.specs import find_specs
from connectors.dmp.client import OutcomeKind, SubmitResult

__all__ = [
    "HASH_MISMATCH",
    "TARGET_NOT_IN_DMP",
    "Progress",
    "RunSummary",
    "StopSwitch",
    "run",
    "run_blocking",
    "until_instant",
]

log = get_logger("backfill.pipeline")
_T = TypeVar("_T")

# Codes the sender writes in the ledger for what it finds at send time (not selection reasons).
TARGET_NOT_IN_DMP = "replacement_target_not_in_dmp"
"""the version this one replaces is not in the DMP (ITI-18 found no Approved entry)"""
HASH_MISMATCH = "resend_hash_mismatch"
"""a document left `sending` by a crash builds to other bytes now: never resent silently"""

_PUSHBACK_CODES = frozenset({
    "XDSRegistryBusy", "XDSRepositoryBusy", "XDSRegistryOutOfResources",
    "XDSRepositoryOutOfResources", "XDSRegistryNotAvailable", "connection",
})  # fmt: skip
_PUSHBACK_HTTP = frozenset({429, 503})
_STOP_GRACE = 5.0  # seconds in-flight requests get to finish after a stop
_HELD_FOR = 1.0  # seconds an answer recorded on the loop may wait for its commit


class DmpClientLike(Protocol):
    async def submit(self, patient_id: str, documents: Any, **options: Any) -> SubmitResult: ...
    async def find_entry_uuid(self, unique_id: str, *, patient_id: str) -> Any: ...
    async def aclose(self) -> None: ...


class Progress(Protocol):
    """What the CLI's progress display is told (rich on a terminal; nothing in cron).

    A display that also has `show_ds14(before, now)` is given the month's DS1.4 as it rises
    (DESIGN §12), measured again every little while during the run.
    """

    def start(self, patients_hint: int | None) -> None: ...
    def advance(self, documents: int, acked: int) -> None: ...
    def stop(self) -> None: ...


# ---- the summary --------------------------------------------------------------------------------


@dataclass
class RunSummary:
    """What a run did; `exit_code` per DESIGN §11."""

    mode: str
    dry_run: bool
    run_id: int | None = None
    exit_code: int = 0
    stop_reason: str | None = None
    """why the run ended early (fatal answer, signal, --until, --max-documents, DMP pause)"""
    by_state: dict[str, int] = field(default_factory=dict)
    """documents the run had in charge, by state at its end (dry run: would send / not built)"""
    reasons: Counter[str] = field(default_factory=Counter)
    """codes of documents rejected, deferred or left waiting in this run"""
    refused: dict[str, str] = field(default_factory=dict)
    """manual mode: requested documents the rule excludes → reason code"""
    patients: int = 0
    acked: int = 0
    posts: int = 0
    retries: int = 0
    lookups: int = 0
    pushbacks: int = 0
    elapsed: float = 0.0
    invariant: Invariant | None = None
    problems: list[str] = field(default_factory=list)
    ds14_before: Ds14 | None = None
    """DS1.4 of the month to date when the run started sending, and when it ended"""
    ds14_after: Ds14 | None = None
    started: float = field(default_factory=time.monotonic, repr=False)

    @property
    def rate(self) -> float:
        """Documents acknowledged per second of the run."""
        return self.acked / self.elapsed if self.elapsed > 0 else 0.0

    def lines(self) -> list[str]:
        """The end-of-run summary as people read it (identifiers and counts only)."""
        head = "dry run (nothing sent, nothing written)" if self.dry_run else f"run {self.run_id}"
        out = [f"{head}, mode {self.mode}: exit {self.exit_code}"]
        if self.stop_reason:
            out.append(f"stopped: {self.stop_reason}")
        states = ", ".join(f"{n} {state}" for state, n in sorted(self.by_state.items()) if n)
        out.append(f"documents: {states or 'none'} ({self.patients} patients)")
        if self.reasons:
            out.append(
                "codes: " + ", ".join(f"{n} {code}" for code, n in self.reasons.most_common())
            )
        for document_id, reason in sorted(self.refused.items()):
            out.append(f"refused: {document_id} ({reason})")
        if not self.dry_run:
            out.append(
                f"sent: {self.acked} acknowledged in {self.elapsed:.1f} s ({self.rate:.1f} "
                f"documents/s), {self.posts} POSTs, {self.retries} retries, {self.lookups} "
                f"ITI-18 lookups, {self.pushbacks} pushbacks from the DMP"
            )
        if self.invariant is not None:
            out.append("invariant: " + self.invariant.describe())
        before, after = self.ds14_before, self.ds14_after
        if before is not None and after is not None:
            out.append(
                f"DS1.4 {after.month} to date: {percent(before.rate)} before the run, "
                f"{percent(after.rate)} after ({after.numerator} of {after.denominator} "
                "returning-patient stays; target 50 %)"
            )
        out.extend(f"problem: {p}" for p in self.problems)
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "dry_run": self.dry_run,
            "run_id": self.run_id,
            "exit_code": self.exit_code,
            "stop_reason": self.stop_reason,
            "by_state": dict(self.by_state),
            "reasons": dict(self.reasons),
            "refused": dict(self.refused),
            "patients": self.patients,
            "acked": self.acked,
            "posts": self.posts,
            "retries": self.retries,
            "lookups": self.lookups,
            "pushbacks": self.pushbacks,
            "elapsed": round(self.elapsed, 3),
            "rate": round(self.rate, 3),
            "invariant": self.invariant.as_json() if self.invariant else None,
            "problems": list(self.problems),
            "ds14_before": self.ds14_before.as_json() if self.ds14_before else None,
            "ds14_after": self.ds14_after.as_json() if self.ds14_after else None,
        }


def _tracked_ds14(settings: Settings) -> Ds14 | None:
    """The month's DS1.4 now, or None with a warning: tracking the indicator never fails a run."""
    try:
        return month_to_date_ds14(settings, dt.datetime.now(dt.UTC))
    except (BackfillError, sa.exc.SQLAlchemyError) as exc:
        log.warning("ds14.not_tracked", error=f"{type(exc).__name__}: {exc}"[:300])
        return None


class StopSwitch:
    """Asks a run to stop taking patients (signals, --until, --max-documents); says why."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self.event = asyncio.Event()

    def stop(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
            log.info("run.stopping", reason=reason)
        self.event.set()

    @property
    def stopped(self) -> bool:
        return self.reason is not None


class _Fatal(BackfillError):
    exit_code = 2


def until_instant(text: str, now: dt.datetime) -> dt.datetime:
    """`--until HH:MM`: the next such Paris wall-clock time after `now` (an aware instant)."""
    try:
        clock = dt.time.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"--until {text!r}: expected HH:MM (Europe/Paris time)") from None
    local = now.astimezone(PARIS)
    target = dt.datetime.combine(local.date(), clock.replace(tzinfo=None), tzinfo=PARIS)
    if target <= local:
        target = dt.datetime.combine(
            local.date() + dt.timedelta(days=1), clock.replace(tzinfo=None), tzinfo=PARIS
        )
    return target.astimezone(dt.UTC)


# ---- selection → ledger -------------------------------------------------------------------------


def _selected_stream(
    engine: Engine,
    decisions: Iterator[Decision],
    as_of: dt.datetime,
    lookahead_days: int,
    *,
    ipps: Collection[str] | None,
    document_ids: Collection[str] | None,
    refused: dict[str, str],
    hidden: set[str],
    chunk: int = 2000,
) -> Iterator[Selected]:
    """Selection's chosen documents with their patient's priority, one dpi_stay query a chunk.

    `hidden` collects the documents to build invisible to legal representatives (few: a
    minor's under the [minors] policy); selection decides it again every run, so a resend
    after a crash builds the same bytes."""
    wanted_docs = set(document_ids) if document_ids else None
    wanted_ipps = set(ipps) if ipps is not None else None  # empty: nobody (visiting, no visit)
    found: set[str] = set()
    batch: list[Decision] = []

    def flush() -> Iterator[Selected]:
        with engine.connect() as conn:
            keys = patient_priorities(conn, {d.ipp for d in batch}, as_of, lookahead_days)
        for decision in batch:
            key: Priority = keys[decision.ipp]
            yield Selected(
                decision.document_id,
                decision.set_id,
                decision.version,
                decision.ipp,
                decision.replaces_unique_id,
                decision.kind,
                urgent=key.urgent,
                last_stay_at=key.last_stay_at,
            )
        batch.clear()

    for decision in decisions:
        if wanted_ipps is not None and decision.ipp not in wanted_ipps:
            continue
        if wanted_docs is not None:
            if decision.document_id not in wanted_docs:
                continue
            found.add(decision.document_id)
        if not decision.selected:
            if wanted_docs is not None:
                refused[decision.document_id] = decision.decision
            continue
        batch.append(decision)
        if decision.hide_from_legal_rep:
            hidden.add(decision.document_id)
        if len(batch) >= chunk:
            yield from flush()
    if batch:
        yield from flush()
    # A requested document the DPI does not have at all (or not for these patients).
    for document_id in (wanted_docs or set()) - found:
        refused[document_id] = "not_in_dpi"


def _starting(pool: BuildPool, stream: Iterable[Selected]) -> Iterator[Selected]:
    """`stream`, starting the pool's workers when it yields its first document: they come up
    while the rest is selected, and a run with nothing new selected (a rerun) starts none
    before it needs them."""
    started = False
    for item in stream:
        if not started:
            pool.start()
            started = True
        yield item


# ---- sending one patient ------------------------------------------------------------------------


@dataclass
class _Ready:
    """A document built and ready to go, with what the ledger needs to know of it."""

    pending: PendingDocument
    built: BuiltDocument
    metadata: bytes | None = None  # the entry's ExtrinsicObject, from the build worker

    @property
    def size(self) -> int:
        return self.built.size

    @property
    def document_id(self) -> str:
        return self.pending.document_id

    def sending(self) -> LedgerSending:
        return LedgerSending(
            self.pending.document_id,
            self.built.unique_id,
            self.built.sha1,
            self.built.size,
            self.pending.replaces_unique_id,
        )


def _signal_of(result: Any) -> Signal:
    """What a SubmitResult (or an ITI-18 LookupResult) tells the pacer."""
    if result.kind is OutcomeKind.TRANSIENT:
        codes = {d.code for d in getattr(result, "documents", ())}
        codes |= set(getattr(result, "codes", ()))
        if (
            getattr(result, "http_status", None) in _PUSHBACK_HTTP
            or result.retry_after is not None
            or codes & _PUSHBACK_CODES
        ):
            return Signal.PUSHBACK
        return Signal.NEUTRAL
    return Signal.OK


@dataclass
class _Context:
    settings: Settings
    ledger: Ledger
    run_id: int
    client: DmpClientLike
    pacer: Pacer
    backoff: JitteredBackoff
    pool: BuildPool
    summary: RunSummary
    stop: StopSwitch
    max_documents: int | None
    clock: Callable[[], dt.datetime]
    hidden: set[str]
    ledger_thread: ThreadPoolExecutor | None
    taken: int = 0

    async def led(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A ledger call, in the ledger's threads when it has some (`Ledger.writers`: a server
        to wait on), else here; one patient's calls come one after the other, as its sender
        awaits each."""
        if self.ledger_thread is None:
            return call(*args, **kwargs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.ledger_thread, partial(call, *args, **kwargs))


class _PatientSender:
    """Everything done for one patient: build, look up replaced entries, send its sets."""

    def __init__(self, ctx: _Context, ipp: str) -> None:
        self.ctx, self.ipp = ctx, ipp
        self.deferred = False
        self.acked = 0  # this patient's (the run's total is shared by every sender task)

    async def send(self) -> None:
        ctx = self.ctx
        pending = await ctx.led(
            ctx.ledger.pending_documents, self.ipp, ctx.clock(), run_id=ctx.run_id
        )
        if ctx.max_documents is not None:
            room = ctx.max_documents - ctx.taken
            if room <= 0:
                ctx.stop.stop(f"--max-documents {ctx.max_documents} reached")
                return
            pending = pending[:room]
        if not pending:
            return
        ctx.taken += len(pending)
        ctx.summary.patients += 1
        outcomes = await ctx.pool.build(
            [(d.document_id, d.replaces_unique_id) for d in pending],
            ctx.hidden & {d.document_id for d in pending},
        )
        ready = [
            r
            for r in [await self._check(p, o) for p, o in zip(pending, outcomes, strict=True)]
            if r is not None
        ]
        ready = [r for r in [await self._target(r) for r in ready] if r is not None]
        dmp = ctx.settings.dmp
        # A submission set has one contentTypeCode (the kind of stay): never mix kinds in a set.
        by_content: dict[object, list[_Ready]] = {}
        for r in ready:
            by_content.setdefault(r.built.content_type, []).append(r)
        for group in by_content.values():
            for part in split_sets(
                group, max_documents=dmp.max_documents_per_set, max_bytes=dmp.max_bytes_per_set
            ):
                await self._settle(part)

    # -- before sending -------------------------------------------------------------------------

    async def _check(self, pending: PendingDocument, outcome: BuildOutcome) -> _Ready | None:
        ctx = self.ctx
        if outcome.built is None:
            code = outcome.reason or "content_missing"
            await ctx.led(
                ctx.ledger.reject_unsendable,
                ctx.run_id,
                pending.document_id,
                code,
                "cannot be read or built at send time",
            )
            ctx.summary.reasons[code] += 1
            log.warning("document.unsendable", document_id=pending.document_id, code=code)
            return None
        built = outcome.built
        recorded = (pending.unique_id, pending.hash, pending.size)
        left_in_flight = pending.state is DocState.SENDING and pending.hash is not None
        if left_in_flight and recorded != (built.unique_id, built.sha1, built.size):
            # The DMP may hold the bytes sent before the crash; these differ. Loud, not silent.
            await ctx.led(
                ctx.ledger.reject_unsendable,
                ctx.run_id,
                pending.document_id,
                HASH_MISMATCH,
                "left in flight by a crash, it now builds to other bytes than those sent "
                "(was the DPI changed in place?); check the DMP, then `retry --rejected`",
            )
            ctx.summary.reasons[HASH_MISMATCH] += 1
            ctx.summary.problems.append(
                f"document {pending.document_id}: resend would carry other bytes ({HASH_MISMATCH})"
            )
            log.error("document.hash_mismatch", document_id=pending.document_id)
            return None
        return _Ready(pending, built, outcome.metadata)

    async def _target(self, ready: _Ready) -> _Ready | None:
        """A replacement goes as RPLC of the entryUUID the DMP assigned to its target."""
        replaced = ready.pending.replaces_unique_id
        if not replaced:
            return ready
        ctx = self.ctx
        entry = ready.built.entry
        async for attempt in self._retrying():
            with attempt:
                async with ctx.pacer.slot(0) as slot:
                    ctx.summary.lookups += 1
                    found = await ctx.client.find_entry_uuid(replaced, patient_id=entry.patient_id)
                    slot.report(_signal_of(found), getattr(found, "retry_after", None))
            if not attempt.retry_state.outcome.failed:  # type: ignore[union-attr]  (the answer, not None)
                attempt.retry_state.set_result(found)
        if found.kind is OutcomeKind.FATAL:
            raise _Fatal(f"the DMP refused a lookup: {found.detail}")
        if found.kind is OutcomeKind.PATIENT:
            # The DMP has no open record for this patient: the whole patient waits.
            await self._defer()
            return None
        if found.kind is not OutcomeKind.DONE:
            # Not answered now: the document stays as it is; the next run looks again.
            ctx.summary.reasons["replacement_lookup_" + str(found.kind)] += 1
            return None
        if found.entry_uuid is None:
            await ctx.led(
                ctx.ledger.reject_unsendable,
                ctx.run_id,
                ready.document_id,
                TARGET_NOT_IN_DMP,
                f"the version it replaces ({replaced}) is not in the DMP; never sent as a "
                "second original",
            )
            ctx.summary.reasons[TARGET_NOT_IN_DMP] += 1
            return None
        built = dataclasses.replace(
            ready.built, entry=dataclasses.replace(entry, replaces_entry_uuid=found.entry_uuid)
        )
        return _Ready(ready.pending, built, ready.metadata)  # RPLC is an association, not in it

    # -- sending ----------------------------------------------------------------------------------

    def _retrying(self, on_wait: Callable[[Any, float], None] | None = None) -> Any:
        dmp = self.ctx.settings.dmp
        return retry_loop(
            max_attempts=dmp.max_attempts,
            max_retry_wait=dmp.max_retry_wait,
            backoff=self.ctx.backoff,
            is_transient=lambda r: r.kind is OutcomeKind.TRANSIENT and not self.ctx.stop.stopped,
            retry_after=lambda r: r.retry_after,
            on_wait=on_wait,
        )

    async def _settle(self, part: list[_Ready]) -> None:
        """Send a set; resend what it hands back (split, or bisected) until all is settled."""
        queue: list[list[_Ready]] = [part]
        while queue and not self.deferred:
            current = queue.pop()
            again = await self._send_set(current)
            if not again:
                continue
            if len(again) < len(current):
                queue.append(again)  # the culprits are out: the rest goes as one set
            else:
                middle = len(current) // 2  # nobody located: bisect (len > 1, see `_end`)
                queue.extend([current[middle:], current[:middle]])

    async def _send_set(self, part: list[_Ready]) -> list[_Ready]:
        """One set through the pacer and tenacity; the documents to send again (split)."""
        ctx = self.ctx
        if ctx.stop.stopped:
            return []
        patient_id = part[0].built.entry.patient_id
        documents = [(r.built.entry, r.built.xml) for r in part]
        metadata = {r.built.unique_id: r.metadata for r in part if r.metadata is not None}
        attempt_ids: list[int] = []
        unrecorded: list[tuple[int, SubmitResult]] = []  # a transient answer awaiting its wait
        again: list[_Ready] = []

        async def begin(submission_set_id: str) -> None:
            attempt_ids.append(
                await ctx.led(
                    ctx.ledger.begin_attempt,
                    ctx.run_id,
                    self.ipp,
                    submission_set_id,
                    [r.sending() for r in part],
                )
            )

        async def record_wait(result: SubmitResult, seconds: float) -> None:
            # Recorded before the sleep: a crash meanwhile leaves a due date, not a stuck row.
            attempt_id, answer = unrecorded.pop()
            await self._end(attempt_id, answer, part, wait=seconds)

        result: SubmitResult | None = None
        async for attempt in self._retrying(record_wait):
            with attempt:
                async with ctx.pacer.slot(len(part)) as slot:
                    ctx.summary.posts += 1
                    if attempt.retry_state.attempt_number > 1:
                        ctx.summary.retries += 1
                    result = await ctx.client.submit(
                        patient_id,
                        documents,
                        before_post=begin,
                        content_type=part[0].built.content_type,
                        metadata=metadata,
                    )
                    signal_ = _signal_of(result)
                    slot.report(signal_, result.retry_after)
                    if signal_ is Signal.PUSHBACK:
                        ctx.summary.pushbacks += 1
                if result.kind is OutcomeKind.TRANSIENT:
                    unrecorded.append((attempt_ids[-1], result))
                else:
                    again = await self._end(attempt_ids[-1], result, part)
            if not attempt.retry_state.outcome.failed:  # type: ignore[union-attr]  (the answer, not None)
                attempt.retry_state.set_result(result)
        if unrecorded:  # a transient answer after a stop: due again at the next run
            attempt_id, answer = unrecorded.pop()
            await self._end(attempt_id, answer, part, wait=0.0)
        return again

    async def _defer(self) -> None:
        """XDSUnknownPatientId: the patient's waiting documents are deferred until the recheck."""
        ctx = self.ctx
        until = ctx.clock() + dt.timedelta(days=ctx.settings.run.no_dmp_recheck_days)
        deferred = await ctx.led(
            ctx.ledger.defer_patient, self.ipp, until, "XDSUnknownPatientId", run_id=ctx.run_id
        )
        ctx.summary.reasons["XDSUnknownPatientId"] += deferred  # those not in the attempt
        self.deferred = True
        log.info("patient.deferred", ipp=self.ipp, until=until.isoformat())

    async def _end(
        self,
        attempt_id: int,
        result: SubmitResult,
        part: list[_Ready],
        *,
        wait: float = 0.0,
    ) -> list[_Ready]:
        """Record the answer; return the documents of a split set to send again."""
        ctx = self.ctx
        now = ctx.clock()
        by_uid = {d.unique_id: d for d in result.documents}
        results: list[DocResult] = []
        again: list[_Ready] = []
        fatal = result.kind is OutcomeKind.FATAL
        for ready in part:
            outcome = by_uid.get(ready.built.unique_id)
            kind = outcome.kind if outcome is not None else result.kind
            code = (outcome.code if outcome is not None else None) or None
            text = (outcome.text if outcome is not None else "") or result.detail
            if fatal:
                state = DocState.SELECTED  # not failed: the run stops, nothing is marked
            elif kind is OutcomeKind.DONE:
                state = DocState.ACKED
            elif kind is OutcomeKind.DOCUMENT:
                state = DocState.REJECTED
            elif kind is OutcomeKind.PATIENT:
                state = DocState.DEFERRED
            elif kind is OutcomeKind.SPLIT and len(part) > 1:
                state = DocState.SELECTED  # not stored: sent again in a smaller set
                again.append(ready)
            else:
                state = DocState.RETRY_WAIT
            next_at = None
            if state is DocState.RETRY_WAIT:
                # Alone and still too large for the DMP (HTTP 413) is never a rejection (only a
                # RegistryResponse rejects): it waits, visibly, for a day.
                seconds = 86_400.0 if kind is OutcomeKind.SPLIT else wait
                next_at = now + dt.timedelta(seconds=seconds) if seconds > 0 else None
            results.append(DocResult(ready.document_id, state, code, text[:500], next_at))
            if state in (DocState.REJECTED, DocState.DEFERRED):
                ctx.summary.reasons[code or str(kind)] += 1
        await ctx.led(
            ctx.ledger.end_attempt,
            attempt_id,
            outcome=str(result.kind),
            http_status=result.http_status,
            latency=result.elapsed,
            results=results,
            detail=result.detail,
        )
        acked = sum(r.state is DocState.ACKED for r in results)
        ctx.summary.acked += acked
        self.acked += acked
        if result.kind is OutcomeKind.PATIENT:
            await self._defer()
        if fatal:
            raise _Fatal(f"the DMP refused the engine: {result.detail}")
        log.debug(
            "set.answered",
            ipp=self.ipp,
            documents=len(part),
            outcome=str(result.kind),
            http_status=result.http_status,
        )
        return again


# ---- the run ------------------------------------------------------------------------------------


def _pacing(settings: Settings) -> PacingSettings:
    dmp = settings.dmp
    return PacingSettings(
        rate=dmp.rate, concurrency=dmp.concurrency, max_retry_wait=dmp.max_retry_wait
    )


@contextlib.contextmanager
def _signals(stop: StopSwitch) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.stop, f"signal {signal.Signals(signum).name}")
            installed.append(signum)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread (tests) or no signals here
    try:
        yield
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


async def run(
    settings: Settings,
    *,
    mode: str,
    rule: Rule,
    as_of: dt.datetime,
    window: Window | None = None,
    ipps: Collection[str] | None = None,
    document_ids: Collection[str] | None = None,
    dry_run: bool = False,
    until: dt.datetime | None = None,
    max_documents: int | None = None,
    visiting: bool = False,
    lookahead_days: int | None = None,
    progress: Progress | None = None,
    client: DmpClientLike | None = None,
    stop: StopSwitch | None = None,
    pool_kind: PoolKind | None = None,
    seed: int | None = None,
) -> RunSummary:
    """One run of the sender (see the module docstring). `client` and `stop` are seams for
    tests and benchmarks; the CLI passes neither."""
    settings.require("dpi.url")
    pool_kind = pool_kind or settings.run.build_pool
    # Every document is checked against the official schemas before it goes: without them
    # nothing can go, which is configuration (exit 2) said once, not a failure per patient.
    find_specs()
    lookahead = settings.run.lookahead_days if lookahead_days is None else lookahead_days
    # A visiting run is its own series in the summary, the ledger and the metrics.
    summary = RunSummary(mode=mode_name(mode, visiting), dry_run=dry_run)
    engine = open_engine(settings.dpi.url, "DPI")  # type: ignore[arg-type]
    try:
        # Before the ledger records a run: a filter naming a code the DPI lacks stops it here.
        with translate_errors("DPI", settings.dpi.url):  # type: ignore[arg-type]
            check_rule_codes(engine, rule)
        if visiting:
            # Around a visit (backfill.visiting): only these patients, whatever else is pending.
            with engine.connect() as conn:
                around = set(visiting_ipps(conn, as_of, lookahead))
            ipps = around if ipps is None else around & set(ipps)
        if dry_run:
            await _dry_run(
                settings,
                engine,
                summary,
                rule=rule,
                as_of=as_of,
                window=window,
                ipps=ipps,
                document_ids=document_ids,
                visiting=visiting,
                lookahead=lookahead,
                pool_kind=pool_kind,
            )
        else:
            if client is None:
                settings.require("dmp.url")
            stop = stop or StopSwitch()
            with Ledger.open(settings.ledger.url) as ledger, ledger.lock(settings.run.lock_file):
                await _send_run(
                    settings,
                    engine,
                    ledger,
                    summary,
                    rule=rule,
                    as_of=as_of,
                    window=window,
                    ipps=ipps,
                    document_ids=document_ids,
                    visiting=visiting,
                    lookahead=lookahead,
                    until=until,
                    max_documents=max_documents,
                    progress=progress,
                    client=client,
                    stop=stop,
                    pool_kind=pool_kind,
                    seed=seed,
                )
    finally:
        engine.dispose()
        summary.elapsed = time.monotonic() - summary.started
    if summary.refused and summary.exit_code == 0:
        summary.exit_code = 1
    return summary


async def _dry_run(
    settings: Settings,
    engine: Engine,
    summary: RunSummary,
    *,
    rule: Rule,
    as_of: dt.datetime,
    window: Window | None,
    ipps: Collection[str] | None,
    document_ids: Collection[str] | None,
    visiting: bool,
    lookahead: int,
    pool_kind: PoolKind,
) -> None:
    facts = Ledger.open_existing(settings.ledger.url)
    pool = BuildPool(
        settings.dpi.url,  # type: ignore[arg-type]
        settings.establishment.as_cda(),
        content_root=settings.dpi.content_root,
        kind=pool_kind,
        environment=settings.dmp.environment,
    )
    counts: Counter[str] = Counter()
    patients: set[str] = set()
    hidden: set[str] = set()
    try:
        decisions = decide(
            engine,
            rule,
            as_of,
            window=window,
            facts=facts,
            content_root=settings.dpi.content_root,
            fetch_size=settings.dpi.fetch_size,
            environment=settings.dmp.environment,
            # A manual send names the reason of each document it refuses.
            selected_only=document_ids is None,
        )
        stream = _starting(
            pool,
            _selected_stream(
                engine,
                decisions,
                as_of,
                lookahead,
                ipps=ipps,
                document_ids=document_ids,
                refused=summary.refused,
                hidden=hidden,
            ),
        )
        batch: list[Selected] = []

        async def build(items: list[Selected]) -> None:
            wanted = [(s.document_id, s.replaces_unique_id) for s in items]
            for outcome in await pool.build(wanted, hidden & {s.document_id for s in items}):
                if outcome.built is None:
                    counts["would not build"] += 1
                    summary.reasons[outcome.reason or "content_missing"] += 1
                else:
                    counts["would send"] += 1
            items.clear()

        for item in stream:
            batch.append(item)
            patients.add(item.ipp)
            if len(batch) >= 50:
                await build(batch)
        if batch:
            await build(batch)
    finally:
        pool.close()
        if facts is not None:
            facts.close()
    summary.by_state = dict(counts)
    summary.patients = len(patients)


async def _send_run(
    settings: Settings,
    engine: Engine,
    ledger: Ledger,
    summary: RunSummary,
    *,
    rule: Rule,
    as_of: dt.datetime,
    window: Window | None,
    ipps: Collection[str] | None,
    document_ids: Collection[str] | None,
    visiting: bool,
    lookahead: int,
    until: dt.datetime | None,
    max_documents: int | None,
    progress: Progress | None,
    client: DmpClientLike | None,
    stop: StopSwitch,
    pool_kind: PoolKind,
    seed: int | None,
) -> None:
    run_id = ledger.start_run(
        mode=summary.mode,
        rule_name=rule.name,
        rule_digest=rule.digest,
        as_of=as_of,
        options={
            "window": [window.start.isoformat(), window.end.isoformat()] if window else None,
            # a visiting run's patients are recomputed from dpi_stay: their count is enough
            "ipps": (len(ipps) if visiting else sorted(ipps)) if ipps is not None else None,
            "documents": sorted(document_ids) if document_ids else None,
            "until": until.isoformat() if until else None,
            "max_documents": max_documents,
            "rate": settings.dmp.rate,
            "concurrency": settings.dmp.concurrency,
        },
    )
    summary.run_id = run_id
    log.info("run.start", run_id=run_id, mode=summary.mode, rule=rule.name)
    # Started when selection yields its first document (`_starting`), closed at the end.
    with BuildPool(
        settings.dpi.url,  # type: ignore[arg-type]
        settings.establishment.as_cda(),
        content_root=settings.dpi.content_root,
        kind=pool_kind,
        environment=settings.dmp.environment,
        metadata=True,
    ) as pool:
        decisions = decide(
            engine,
            rule,
            as_of,
            window=window,
            facts=ledger,
            content_root=settings.dpi.content_root,
            fetch_size=settings.dpi.fetch_size,
            environment=settings.dmp.environment,
            selected_only=document_ids is None,  # a manual send names the reasons it refuses
        )
        hidden: set[str] = set()
        taken = ledger.record_selected(
            run_id,
            _starting(
                pool,
                _selected_stream(
                    engine,
                    decisions,
                    as_of,
                    lookahead,
                    ipps=ipps,
                    document_ids=document_ids,
                    refused=summary.refused,
                    hidden=hidden,
                ),
            ),
        )
        log.info("run.selected", run_id=run_id, documents=taken)
        summary.ds14_before = _tracked_ds14(settings)
        rng = random.Random(seed)
        own_client = client is None
        if client is None:
            client = async_dmp_client(settings)
        pacer = Pacer(_pacing(settings), rng=rng)
        ctx = _Context(
            settings,
            ledger,
            run_id,
            client,
            pacer,
            JitteredBackoff(0.5, settings.dmp.max_retry_wait, rng),
            pool,
            summary,
            stop,
            max_documents,
            clock=lambda: dt.datetime.now(dt.UTC),
            hidden=hidden,
            ledger_thread=(
                ThreadPoolExecutor(ledger.writers, thread_name_prefix="ledger")
                if ledger.writers
                else None
            ),
        )
        try:
            with _signals(stop), _held_answers(ledger):
                await _send_patients(ctx, until, progress, ipps)
        finally:
            if own_client:
                await client.aclose()
            if ctx.ledger_thread is not None:
                ctx.ledger_thread.shutdown(wait=True)
            summary.pushbacks = pacer.pushbacks_total
            invariant = ledger.check_invariant(run_id)
            summary.invariant = invariant
            summary.by_state = {state.value: n for state, n in invariant.by_state.items()}
            summary.exit_code = _exit_code(summary, invariant)
            if summary.ds14_before is not None:
                # Measured again only if this run moved it (the query reads every acknowledgement).
                summary.ds14_after = (
                    _tracked_ds14(settings) if summary.acked else summary.ds14_before
                )
            summary.elapsed = time.monotonic() - summary.started
            ledger.finish_run(run_id, exit_status=summary.exit_code, counts=summary.as_json())
            log.info("run.end", **_log_fields(summary))
            _write_metrics(settings.run.metrics_file, summary)


@contextlib.contextmanager
def _held_answers(ledger: Ledger) -> Iterator[None]:
    """Answers recorded on the event loop wait for the next `sending` commit (`Ledger.
    holding_writes`), and for at most `_HELD_FOR` seconds: a run waiting on the DMP (a long
    Retry-After) does not keep its last answers, nor the SQLite write lock, to itself."""
    if ledger.writers:  # calls in threads, each its own transaction
        yield
        return
    loop = asyncio.get_running_loop()

    def commit() -> None:
        nonlocal timer
        ledger.commit_held()
        timer = loop.call_later(_HELD_FOR, commit)

    with ledger.holding_writes():
        timer = loop.call_later(_HELD_FOR, commit)
        try:
            yield
        finally:
            timer.cancel()


def run_blocking(job: Coroutine[Any, Any, _T]) -> _T:
    """Run the sender to its end from synchronous code (the CLI, benches), on uvloop where it
    is installed: the sender's process is bound by its one core, and uvloop's leaner loop gave
    bench/send.py (b) 6 to 35 % more documents/s than asyncio's own in back-to-back runs."""
    try:
        import uvloop  # noqa: PLC0415  (absent on Windows)
    except ImportError:  # Windows: uvloop is not installed there
        factory = None
    else:
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(job)


def mode_name(mode: str, visiting: bool) -> str:
    return f"{mode}+visiting" if visiting else mode


def _exit_code(summary: RunSummary, invariant: Invariant) -> int:
    if summary.exit_code == 2:
        return 2
    if not invariant.holds or summary.problems:
        return 1
    waiting = invariant.by_state.get(DocState.RETRY_WAIT, 0) + invariant.not_attempted
    waiting += invariant.cut_while_sending
    if summary.stop_reason or waiting:
        if summary.stop_reason is None:
            summary.stop_reason = f"{waiting} documents wait for a later attempt"
        return 3
    return 0


async def _patients(ctx: _Context, ipps: Collection[str] | None) -> AsyncIterator[str]:
    for ipp in ctx.ledger.pending_patients(ctx.clock(), ipps=ipps, run_id=ctx.run_id):
        if ctx.stop.stopped:
            return
        yield ipp
        await asyncio.sleep(0)


async def _send_patients(
    ctx: _Context,
    until: dt.datetime | None,
    progress: Progress | None,
    ipps: Collection[str] | None,
) -> None:
    # More patients in hand than requests in flight, so reading and building overlap sending;
    # the pacer bounds the requests themselves.
    workers_n = ctx.settings.dmp.concurrency * 2
    queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=workers_n)
    fatal: list[_Fatal] = []

    async def worker() -> None:
        while (ipp := await queue.get()) is not None:
            if ctx.stop.stopped:
                continue
            sender = _PatientSender(ctx, ipp)
            try:
                await sender.send()
            except _Fatal as exc:
                fatal.append(exc)
                ctx.stop.stop(str(exc))
            except DmpWaitTooLong as exc:
                ctx.stop.stop(str(exc))
            except Exception as exc:
                # A bug or a database failure: stop cleanly (the ledger stays consistent, each
                # write is one transaction) and fail the run, with the details in the log.
                log.exception("patient.failed", ipp=ipp)
                ctx.summary.problems.append(f"patient {ipp}: {type(exc).__name__}: {exc}")
                ctx.stop.stop(f"unexpected error ({type(exc).__name__})")
            if progress is not None:
                progress.advance(1, sender.acked)

    async def produce() -> None:
        async for ipp in _patients(ctx, ipps):
            await queue.put(ipp)
        for _ in range(workers_n):
            await queue.put(None)

    timer: asyncio.TimerHandle | None = None
    if until is not None:
        delay = (until - ctx.clock()).total_seconds()
        timer = asyncio.get_running_loop().call_later(
            max(0.0, delay), ctx.stop.stop, f"--until {until.astimezone(PARIS):%H:%M} reached"
        )
    if progress is not None:
        # The total a bar shows; patients named on the command line are fewer, and unknown here.
        hint = (
            None
            if ipps is not None
            else ctx.ledger.pending_patient_count(ctx.clock(), run_id=ctx.run_id)
        )
        progress.start(hint)
    workers = [asyncio.create_task(worker()) for _ in range(workers_n)]
    producer = asyncio.create_task(produce())
    show = getattr(progress, "show_ds14", None)
    watcher = (
        asyncio.create_task(_watch_ds14(ctx, show))
        if show is not None and ctx.summary.ds14_before is not None
        else None
    )
    try:
        done = asyncio.gather(*workers)
        stopper = asyncio.create_task(ctx.stop.event.wait())
        await asyncio.wait({done, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if ctx.stop.stopped and not done.done():
            # Stop taking patients; requests in flight get a few seconds to finish.
            producer.cancel()
            _, late = await asyncio.wait({done}, timeout=0 if fatal else _STOP_GRACE)
            if late:
                done.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await done
        stopper.cancel()
        await asyncio.gather(done, return_exceptions=True)
    finally:
        producer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await producer
        if timer is not None:
            timer.cancel()
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        if progress is not None:
            progress.stop()
    if fatal:
        ctx.summary.exit_code = 2
    ctx.summary.stop_reason = ctx.stop.reason


async def _watch_ds14(ctx: _Context, show: Callable[[Ds14 | None, Ds14], None]) -> None:
    """The month's DS1.4 measured again in a thread while the run sends, for the progress
    display: at most every 10 s, and never more than a twentieth of the time (a large DPI or
    ledger measures in seconds), so the sender keeps the machine."""
    before = ctx.summary.ds14_before
    assert before is not None
    show(before, before)
    loop = asyncio.get_running_loop()
    interval = _DS14_EVERY
    while True:
        await asyncio.sleep(interval)
        started = loop.time()
        figure = await loop.run_in_executor(None, _tracked_ds14, ctx.settings)
        interval = max(_DS14_EVERY, 20 * (loop.time() - started))
        if figure is not None:
            show(before, figure)


_DS14_EVERY = 10.0


def _log_fields(summary: RunSummary) -> dict[str, Any]:
    fields = summary.as_json()
    fields.pop("refused", None)
    return fields


def _write_metrics(path: Path | None, summary: RunSummary) -> None:
    """The run's figures as a Prometheus textfile (node_exporter's textfile collector)."""
    if path is None:
        return
    registry = CollectorRegistry()
    labels = {"mode": summary.mode}
    documents = Gauge(
        "backfill_run_documents",
        "Documents the last run had in charge, by state at its end",
        ["mode", "state"],
        registry=registry,
    )
    for state in DocState:
        documents.labels(state=state.value, **labels).set(summary.by_state.get(state.value, 0))
    codes = Gauge(
        "backfill_run_codes",
        "Documents rejected, deferred or waiting in the last run, by code",
        ["mode", "code"],
        registry=registry,
    )
    for code, n in summary.reasons.items():
        codes.labels(code=code, **labels).set(n)
    for name, help_text, value in (
        ("backfill_run_exit_code", "Exit code of the last run", summary.exit_code),
        ("backfill_run_seconds", "Duration of the last run", summary.elapsed),
        ("backfill_run_acked", "Documents acknowledged by the DMP in the last run", summary.acked),
        ("backfill_run_rate", "Documents acknowledged per second in the last run", summary.rate),
        ("backfill_run_posts", "ITI-41 requests of the last run", summary.posts),
        ("backfill_run_retries", "Retried requests in the last run", summary.retries),
        ("backfill_run_pushbacks", "Pushbacks from the DMP in the last run", summary.pushbacks),
        (
            "backfill_run_invariant_holds",
            "1 when the end-of-run invariant held",
            int(bool(summary.invariant and summary.invariant.holds)),
        ),
        ("backfill_run_finished_timestamp", "When the last run ended (Unix time)", time.time()),
        *(
            (f"backfill_run_ds14_{when}", f"DS1.4 of the month to date {when} the last run", value)
            for when, figure in (("before", summary.ds14_before), ("after", summary.ds14_after))
            if figure is not None and (value := figure.rate) is not None
        ),
    ):
        Gauge(name, help_text, ["mode"], registry=registry).labels(**labels).set(value)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry)
