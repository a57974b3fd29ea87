"""The sender killed (SIGKILL) or interrupted (SIGINT) mid-run, then run again: the DMP ends up
holding exactly the selection, each document once, and the ledger's invariant holds.

Both the mock DMP (`backfill mock-dmp`) and the sender (`backfill run`) are real processes. The
moments to strike are not timed: the test waits for the ledger's attempt log to grow by a seeded
random number of rows, then kills, so every kill lands after a given amount of progress.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from backfill.databases import open_engine
from backfill.ledger import Ledger
from backfill.testing import descendants
from connectors.dmp_mock.process import MockProcess
from connectors.dmp_mock.seeding import seed_from_dpi
from tests.conftest import Database
from tests.integration.pipeline_support import (
    AS_OF,
    Dpi,
    make_dpi,
    mock_documents,
    selected_unique_ids,
)

pytestmark = pytest.mark.slow
WAIT_LIMIT = 120.0  # seconds: a guard against a hung child, never a pace


@pytest.fixture(scope="module")
def dpi(tmp_path_factory: pytest.TempPathFactory) -> Dpi:
    # Enough documents (191) that ten kills, each after one or two more sets, never find
    # the run already done however fast the sender has become.
    return make_dpi(tmp_path_factory.mktemp("dpi"), patients=400, seed=9)


@pytest.fixture
def mock_process(tmp_path: Path, dpi: Dpi) -> Iterator[str]:
    with MockProcess(f"sqlite:///{tmp_path / 'mock.sqlite'}", tmp_path / "mock.log") as server:
        engine = open_engine(dpi.url, "DPI")
        try:
            seed_from_dpi(engine, server.base_url)
        finally:
            engine.dispose()
        yield server.base_url


def _env(dpi: Dpi, ledger_url: str, base: str, folder: Path, rate: float) -> dict[str, str]:
    return {
        **os.environ,
        "BACKFILL_DPI_URL": dpi.url,
        "BACKFILL_DPI_CONTENT_ROOT": str(dpi.files),
        "BACKFILL_LEDGER_URL": ledger_url,
        "BACKFILL_DMP_URL": base + "/si-dmp-server/v2/services",
        "BACKFILL_DMP_RATE": str(rate),
        "BACKFILL_DMP_MAX_DOCUMENTS_PER_SET": "2",
        "BACKFILL_RUN_LOCK_FILE": str(folder / "backfill.lock"),
        "BACKFILL_LOGGING_LEVEL": "WARNING",
    }


def _start(env: dict[str, str], folder: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "backfill", "run", "--as-of", AS_OF.isoformat()],
        env=env, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _attempts(engine: sa.Engine) -> int:
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM bf_attempt")).scalar_one())
    except sa.exc.DBAPIError:
        return 0  # not created yet


def _wait_for_attempts(engine: sa.Engine, target: int, child: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + WAIT_LIMIT
    while _attempts(engine) < target and child.poll() is None:
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.01)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _held_once(base: str, seeded: set[str]) -> list[str]:
    return sorted(str(d["unique_id"]) for d in mock_documents(base) if d["unique_id"] not in seeded)


def test_killed_ten_times_then_rerun_the_dmp_holds_the_selection_once(
    dpi: Dpi, mock_process: str, database: Database, tmp_path: Path
) -> None:
    seeded = {str(d["unique_id"]) for d in mock_documents(mock_process)}
    expected = selected_unique_ids(dpi)
    env = _env(dpi, database.url, mock_process, tmp_path, rate=40)
    watch = sa.create_engine(database.url)
    rng = random.Random(2024)
    kills = 0
    workers: list[int] = []
    try:
        for _ in range(10):
            child = _start(env, tmp_path)
            _wait_for_attempts(watch, _attempts(watch) + rng.randint(1, 2), child)
            if child.poll() is None:
                workers += descendants(child.pid)  # the fork server and its workers
                child.send_signal(signal.SIGKILL)
                kills += 1
            # The pool's workers share the run's stdout: this returns once they have left too.
            child.communicate(timeout=WAIT_LIMIT)
        final = _start(env, tmp_path)
        out, err = final.communicate(timeout=WAIT_LIMIT)
    finally:
        watch.dispose()
    assert kills >= 10, "every kill struck a running sender"
    assert workers, "the runs built their documents in worker processes"
    assert not [pid for pid in workers if _running(pid)], "a killed run left workers behind"
    assert final.returncode == 0, out + err
    assert "invariant" in out
    assert "holds" in out
    assert _held_once(mock_process, seeded) == sorted(expected)
    with Ledger.open(database.url) as ledger:
        assert ledger.status().counts.get("acked") == len(expected)


def test_sigint_stops_with_exit_3_and_a_summary_and_the_rerun_completes(
    dpi: Dpi, mock_process: str, sqlite_database: Database, tmp_path: Path
) -> None:
    """On SQLite only (the kill test above covers both ledgers; each child costs seconds)."""
    database = sqlite_database
    seeded = {str(d["unique_id"]) for d in mock_documents(mock_process)}
    expected = selected_unique_ids(dpi)
    env = _env(dpi, database.url, mock_process, tmp_path, rate=4)
    watch = sa.create_engine(database.url)
    try:
        child = _start(env, tmp_path)
        _wait_for_attempts(watch, 2, child)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=WAIT_LIMIT)
    finally:
        watch.dispose()
    assert child.returncode == 3, out + err
    assert "stopped: signal SIGINT" in out
    assert "invariant" in out
    assert "Traceback" not in err
    env["BACKFILL_DMP_RATE"] = "500"
    rerun = subprocess.run(
        [sys.executable, "-m", "backfill", "run", "--as-of", AS_OF.isoformat()],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=WAIT_LIMIT, check=False,
    )  # fmt: skip
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert _held_once(mock_process, seeded) == sorted(expected)
