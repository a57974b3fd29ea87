"""Reading documents from the DPI and building their CDA off the event loop.

The sender's event loop only waits on the network; reading a patient's rows and contents and
building their CDA (lxml, base64, SHA-1, the XSD check) runs in a pool. Each worker opens its own
DPI engine from the URL (so a process pool pickles only document ids in and built documents out).

`process` is the default (`[run] build_pool`): once the ledger and the DMP client had shed their
own overhead, the sender's process was bound by one core and building took about a quarter of
it; in worker processes it runs on the other core (`bench/send.py` (b) on this 2-core machine:
134 → 155–159 documents/s, see docs/sender.md). The processes are forked from a fork server,
not from the run: a fork of the run would inherit the run lock's file descriptor and, if the run
were killed, keep the lock held (spawned instead where there is no fork server).
`thread` remains for machines short of memory; `inline` is for tests.
"""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Collection, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any, Literal

from sqlalchemy.engine import Engine

from backfill.databases import open_engine
from backfill.documents import BuildOutcome, build_selected
from backfill.selection.compiler import Environment
from cda.model import Establishment
from cda.validate import cda_schema
from connectors.dmp.ebrim import extrinsic_object

__all__ = ["BuildPool", "PoolKind"]

PoolKind = Literal["thread", "process", "inline"]
# Documents in one task at most (a patient's are never split): a task's documents are all in
# its worker's memory at once, and its first patient waits for its last.
_BATCH = 8


@dataclass(frozen=True)
class _WorkerSetup:
    dpi_url: str
    establishment: Establishment
    content_root: Path | None
    xsd_check: bool
    environment: Environment | None = None
    metadata: bool = False


class _Worker:
    """What a worker needs: the setup and a DPI engine, opened on first use."""

    def __init__(self, setup: _WorkerSetup) -> None:
        self.setup = setup
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    def _dpi(self) -> Engine:
        with self._lock:
            if self._engine is None:
                self._engine = open_engine(self.setup.dpi_url, "DPI")
            return self._engine

    def build(
        self, wanted: Sequence[tuple[str, str | None]], hidden: Collection[str] = ()
    ) -> list[BuildOutcome]:
        outcomes = build_selected(
            self._dpi(),
            wanted,
            self.setup.establishment,
            content_root=self.setup.content_root,
            xsd_check=self.setup.xsd_check,
            hidden_from_legal_rep=hidden,
            environment=self.setup.environment,
        )
        if not self.setup.metadata:
            return list(outcomes)
        return [
            outcome
            if outcome.built is None
            else dataclasses.replace(outcome, metadata=extrinsic_object(outcome.built.entry))
            for outcome in outcomes
        ]

    def warm(self) -> None:
        """Open what the first build needs (the DPI engine, the compiled CDA schema) now.

        Best effort: a failure here is met again, and reported, by the first build."""
        try:
            self._dpi()
            if self.setup.xsd_check:
                cda_schema()
        except Exception:  # the first build meets it again and reports it, in its context
            pass

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


_process_worker: _Worker | None = None


def _init_process(setup: _WorkerSetup, environ: dict[str, str]) -> None:
    global _process_worker  # noqa: PLW0603  (one worker per pool process, set by its initializer)
    # A fork of the fork server has the environment of the moment the server started (the
    # process's first pool), not this pool's: it takes the pool's, as a spawned worker would.
    os.environ.clear()
    os.environ.update(environ)
    _process_worker = _Worker(setup)
    _process_worker.warm()
    parent = multiprocessing.parent_process()
    if parent is not None:
        # A run killed with -9 cannot shut its pool down, and a worker waits on its task queue
        # for ever: it leaves as soon as its parent is gone (the parent's sentinel closes).
        threading.Thread(
            target=_leave_with, args=(parent,), name="parent-watch", daemon=True
        ).start()


def _leave_with(parent: multiprocessing.process.BaseProcess) -> None:
    parent.join()
    os._exit(1)


def _nothing() -> None:
    """A task that does nothing: submitted once per worker, it makes the pool start them all."""


_Request = tuple[Sequence[tuple[str, str | None]], Collection[str]]
_Answer = list[BuildOutcome] | BaseException


def _build_many(worker: _Worker, requests: Sequence[_Request]) -> list[_Answer]:
    """Each request's outcomes, or what it raised: one patient's failure is its own.

    Read and built together (one DPI query for them all: a fifth less CPU a document than a
    query a patient); should that fail, one by one, so only the failing request fails."""
    if len(requests) > 1:
        try:
            together = worker.build(
                [item for wanted, _ in requests for item in wanted],
                frozenset().union(*(hidden for _, hidden in requests)),
            )
        except Exception:  # found again below, and given to its own request
            together = []
        if len(together) == sum(len(wanted) for wanted, _ in requests):
            each = iter(together)
            return [list(islice(each, len(wanted))) for wanted, _ in requests]
    answers: list[_Answer] = []
    for wanted, hidden in requests:
        try:
            answers.append(worker.build(wanted, hidden))
        except Exception as exc:  # handed to that request's caller, which raises it
            answers.append(exc)
    return answers


def _build_in_process(requests: Sequence[_Request]) -> list[_Answer]:
    assert _process_worker is not None, "runs in a BuildPool process"
    return _build_many(_process_worker, requests)


def _context() -> multiprocessing.context.BaseContext:
    """How worker processes start: forked from a fork server where the system has one.

    The fork server is started once per process, clean (it holds only its own descriptors, so
    not the run lock's), and imports this module once; each worker is then a fork of it, ready
    at once. Spawned workers would each import the engine again (about 0.8 s of CPU each, more
    when the main module is a script) while the first sets are being sent."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")  # Windows
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


class BuildPool:
    """`await pool.build(wanted)` → the BuildOutcome of each document, read and built in a worker.

    With `metadata`, each built document comes with its ebRIM ExtrinsicObject (the sender's:
    most of a request's metadata, made here rather than in the sending process)."""

    def __init__(
        self,
        dpi_url: str,
        establishment: Establishment,
        *,
        content_root: Path | None = None,
        kind: PoolKind = "process",
        workers: int | None = None,
        xsd_check: bool = True,
        environment: Environment | None = None,
        metadata: bool = False,
    ) -> None:
        setup = _WorkerSetup(dpi_url, establishment, content_root, xsd_check, environment, metadata)
        self.kind = kind
        workers = workers or min(4, os.cpu_count() or 2)
        self.workers = workers
        self._started = False
        self._worker = _Worker(setup)
        # Builds asked for while every worker is busy wait here and go together, as one task.
        self._waiting: deque[tuple[_Request, asyncio.Future[list[BuildOutcome]]]] = deque()
        self._busy = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor: Executor | None = None
        if kind == "process":
            self._executor = ProcessPoolExecutor(
                workers,
                mp_context=_context(),
                initializer=_init_process,
                initargs=(setup, dict(os.environ)),
            )
        elif kind == "thread":
            self._executor = ThreadPoolExecutor(workers, thread_name_prefix="cda-build")

    def start(self) -> None:
        """Start the worker processes now, without waiting for them (once; later calls do nothing).

        Before its first build a worker needs the fork server up (its first start imports the
        builder) and its own DPI engine and CDA schema. Started during selection, that happens
        while selection keeps this process busy and the other cores are idle, not while the
        first sets go."""
        if self.kind == "process" and self._executor is not None and not self._started:
            self._started = True
            for _ in range(self.workers):
                self._executor.submit(_nothing)

    async def build(
        self, wanted: Sequence[tuple[str, str | None]], hidden: Collection[str] = ()
    ) -> list[BuildOutcome]:
        """Read and build these documents in a worker; the event loop keeps serving.

        `hidden`: those of them to mark invisible to the legal representatives (a minor's,
        under the rule's [minors] policy: selection's `Decision.hide_from_legal_rep`).

        A worker is given the builds asked for while it was busy all at once: a task handed
        to a process pool costs its caller about 0.25 ms of CPU on this machine, whatever its
        size (the pool's feeder and manager threads, pickling, the wake-up), as much as
        building a document."""
        if self._executor is None:
            return self._worker.build(wanted, hidden)
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new run's loop: what an earlier loop left is not awaited
            self._loop, self._waiting, self._busy = loop, deque(), 0
        future: asyncio.Future[list[BuildOutcome]] = loop.create_future()
        self._waiting.append(((list(wanted), frozenset(hidden)), future))
        self._dispatch()
        return await future

    def _dispatch(self) -> None:
        # A task per worker at most: what is asked meanwhile waits here, and goes together.
        while self._waiting and self._busy < self.workers:
            taken: list[tuple[_Request, asyncio.Future[list[BuildOutcome]]]] = []
            documents = 0
            while self._waiting and (
                not taken or documents + len(self._waiting[0][0][0]) <= _BATCH
            ):
                request, future = self._waiting.popleft()
                if not future.done():  # its caller was not cancelled meanwhile
                    taken.append((request, future))
                    documents += len(request[0])
            if not taken:
                continue
            requests = [request for request, _ in taken]
            try:
                if self.kind == "process":
                    task = self._executor.submit(_build_in_process, requests)  # type: ignore[union-attr]
                else:
                    task = self._executor.submit(_build_many, self._worker, requests)  # type: ignore[union-attr]
            except Exception as exc:  # a broken or closed pool: each caller raises it, none waits
                for _, future in taken:
                    future.set_exception(exc)
                continue
            self._busy += 1
            wrapped = asyncio.wrap_future(task)
            wrapped.add_done_callback(partial(self._answer, [future for _, future in taken]))

    def _answer(
        self, futures: list[asyncio.Future[list[BuildOutcome]]], task: asyncio.Future[Any]
    ) -> None:
        self._busy -= 1
        if task.cancelled():  # the pool shut down under it
            for future in futures:
                future.cancel()
            return
        answers: list[Any]
        if (error := task.exception()) is not None:
            answers = [error] * len(futures)  # the pool itself failed (a worker died)
        else:
            answers = task.result()
        for future, answer in zip(futures, answers, strict=True):
            if future.done():
                continue  # its caller was cancelled meanwhile
            if isinstance(answer, BaseException):
                future.set_exception(answer)
            else:
                future.set_result(answer)
        self._dispatch()

    def __enter__(self) -> BuildPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        self._worker.close()
