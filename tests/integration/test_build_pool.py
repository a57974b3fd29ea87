"""The build pool's worker processes: they build what an inline build does, they are started
before the first build, they take their pool's environment, and they hold no copy of the run lock.

Workers are forked from a fork server that lives as long as the test process; these tests do not
depend on whether an earlier test started it.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from backfill.cda_workers import BuildPool
from backfill.config import Settings
from backfill.databases import open_engine
from backfill.ledger import Ledger
from backfill.selection import DEFAULT_RULE, decide, load_rule
from connectors.dmp.ebrim import extrinsic_object
from tests.integration.pipeline_support import AS_OF, Dpi, make_dpi

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dpi(tmp_path_factory: pytest.TempPathFactory) -> Dpi:
    return make_dpi(tmp_path_factory.mktemp("dpi"), patients=25, seed=5)


def _pool(
    dpi: Dpi, kind: str = "process", *, metadata: bool = False, workers: int | None = None
) -> BuildPool:
    return BuildPool(
        dpi.url,
        Settings().establishment.as_cda(),
        content_root=dpi.files,
        kind=kind,  # type: ignore[arg-type]
        metadata=metadata,
        workers=workers,
    )


def _wanted(dpi: Dpi) -> list[tuple[str, str | None]]:
    engine = open_engine(dpi.url, "DPI")
    try:
        return [
            (d.document_id, d.replaces_unique_id)
            for d in decide(engine, load_rule(DEFAULT_RULE), AS_OF, content_root=dpi.files)
            if d.selected
        ]
    finally:
        engine.dispose()


def _in_worker(pool: BuildPool, function: object, *args: object) -> object:
    executor = pool._executor  # the seam: run one plain function in a worker
    assert executor is not None
    return executor.submit(function, *args).result(timeout=60)  # type: ignore[arg-type]


def test_workers_build_the_same_bytes_as_an_inline_build(dpi: Dpi) -> None:
    wanted = _wanted(dpi)
    assert wanted
    inline, process = _pool(dpi, "inline"), _pool(dpi)
    try:
        alone = asyncio.run(inline.build(wanted))
        pooled = asyncio.run(process.build(wanted))
    finally:
        inline.close()
        process.close()
    assert [o.built.xml if o.built else o.reason for o in pooled] == [
        o.built.xml if o.built else o.reason for o in alone
    ]
    assert all(o.built is not None for o in pooled)
    assert all(o.metadata is None for o in pooled)  # only the sender asks for it


def test_the_senders_workers_make_each_entrys_metadata(dpi: Dpi) -> None:
    """The sender's pool hands back each built entry's ExtrinsicObject, the one the request
    would build itself (`tests/unit/test_dmp_wire.py` shows splicing it changes no byte)."""
    pool = _pool(dpi, metadata=True)
    try:
        pooled = asyncio.run(pool.build(_wanted(dpi)))
    finally:
        pool.close()
    assert pooled
    for outcome in pooled:
        assert outcome.built is not None
        assert outcome.metadata == extrinsic_object(outcome.built.entry)


def test_start_has_every_worker_running_before_the_first_build(dpi: Dpi) -> None:
    pool = _pool(dpi)
    try:
        pool.start()
        executor = pool._executor
        assert executor is not None
        # ProcessPoolExecutor starts a process per task submitted while none is idle.
        assert len(executor._processes) == pool.workers  # type: ignore[attr-defined]
    finally:
        pool.close()


def test_a_worker_takes_its_pools_environment_not_the_first_pools(
    dpi: Dpi, monkeypatch: pytest.MonkeyPatch
) -> None:
    for mark in ("first", "second"):
        monkeypatch.setenv("BACKFILL_TEST_POOL_MARK", mark)
        with _pool(dpi) as pool:
            assert _in_worker(pool, os.getenv, "BACKFILL_TEST_POOL_MARK") == mark


def test_a_worker_holds_no_descriptor_of_the_run_lock(dpi: Dpi, tmp_path: Path) -> None:
    """A worker outliving a killed run for a moment must not keep the run lock held."""
    lock_file = tmp_path / "backfill.lock"
    with Ledger.open(f"sqlite:///{tmp_path / 'ledger.sqlite'}") as ledger, ledger.lock(lock_file):
        pool = _pool(dpi)
        try:
            pid = _in_worker(pool, os.getpid)
            assert pid != os.getpid()
            opened = {
                os.path.realpath(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")
            }
        finally:
            pool.close()
    assert str(lock_file.resolve()) not in opened


def test_builds_asked_while_the_workers_are_busy_go_together_and_each_gets_its_own(
    dpi: Dpi,
) -> None:
    """Patients asking at once share tasks (a task costs the sender as much CPU as a build),
    and each gets its own documents, in order, as an inline build makes them."""
    wanted = _wanted(dpi)
    assert len(wanted) >= 8
    inline, pool = _pool(dpi, "inline"), _pool(dpi)
    executor = pool._executor
    assert executor is not None
    submitted: list[object] = []
    real_submit = executor.submit

    def counting(function: object, *args: object) -> object:
        submitted.append(function)
        return real_submit(function, *args)  # type: ignore[arg-type]

    executor.submit = counting  # type: ignore[method-assign]

    async def everyone() -> list[list[object]]:
        return await asyncio.gather(*[pool.build([one]) for one in wanted])

    try:
        pooled = asyncio.run(everyone())
        alone = [asyncio.run(inline.build([one])) for one in wanted]
    finally:
        inline.close()
        pool.close()
    assert len(submitted) < len(wanted)
    assert [[o.built.xml for o in outcomes] for outcomes in pooled] == [  # type: ignore[attr-defined]
        [o.built.xml for o in outcomes]
        for outcomes in alone  # type: ignore[union-attr]
    ]


def test_one_patients_failure_in_a_shared_task_is_that_patients_alone(
    dpi: Dpi, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backfill import cda_workers

    wanted = _wanted(dpi)[:4]
    # Two workers take the first two alone; the last two wait and go together, broken one first.
    broken = wanted[2][0]
    real_build = cda_workers._Worker.build

    def build(self: object, asked: list[tuple[str, str | None]], hidden: object = ()) -> object:
        if any(document_id == broken for document_id, _ in asked):
            raise RuntimeError("this patient's rows are broken")
        return real_build(self, asked, hidden)  # type: ignore[arg-type]

    monkeypatch.setattr(cda_workers._Worker, "build", build)
    pool = _pool(dpi, "thread", workers=2)  # threads: the patched build is the one that runs

    async def everyone() -> list[object]:
        return await asyncio.gather(*[pool.build([one]) for one in wanted], return_exceptions=True)

    try:
        answers = asyncio.run(everyone())
    finally:
        pool.close()
    assert isinstance(answers[2], RuntimeError)
    assert [type(a) for n, a in enumerate(answers) if n != 2] == [list, list, list]


def test_a_pool_that_stops_taking_work_fails_every_waiting_caller_and_hangs_none(
    dpi: Dpi,
) -> None:
    """The pool closes (or breaks: a worker killed) while patients wait for a worker: those
    patients get the error, so the run stops instead of waiting for ever."""
    wanted = _wanted(dpi)[:6]
    pool = _pool(dpi, workers=2)
    executor = pool._executor
    assert executor is not None

    async def everyone() -> list[object]:
        asked = [asyncio.ensure_future(pool.build([one])) for one in wanted]
        await asyncio.sleep(0)  # every build asked: two are with the workers, four wait
        executor.shutdown(wait=False)  # the two finish; no task is taken after them
        return await asyncio.wait_for(asyncio.gather(*asked, return_exceptions=True), 30)

    try:
        answers = asyncio.run(everyone())
    finally:
        pool.close()
    assert [type(a) for a in answers] == [list, list] + [RuntimeError] * 4
