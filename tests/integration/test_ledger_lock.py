"""The run lock on SQLite (a file lock) and PostgreSQL (an advisory lock): a second holder is
refused with the holder named; a holder killed with SIGKILL does not leave the lock stuck."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from backfill.errors import LockHeld
from backfill.ledger import Ledger

HOLDER = """
import sys, time
from pathlib import Path
import sqlalchemy as sa
from backfill.ledger import Ledger
ledger = Ledger.open(sys.argv[1])
with ledger.lock(Path(sys.argv[2])):
    run = ledger.start_run(mode="run")
    backend = 0
    if ledger.engine.dialect.name == "postgresql":
        backend = ledger._lock.conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
    print(run, backend, flush=True)
    sys.stdin.read()  # hold until killed (or stdin closes)
"""


def test_a_second_holder_is_refused_with_the_holder_named(database, tmp_path: Path) -> None:
    lock_file = tmp_path / "backfill.lock"
    with Ledger.open(database.url) as first, Ledger.open(database.url) as second:
        with first.lock(lock_file):
            run = first.start_run(mode="run")
            with pytest.raises(LockHeld) as caught, second.lock(lock_file):
                pass
            message = str(caught.value)
            assert f"pid {os.getpid()}" in message
            assert f"run {run}" in message
            assert "since 20" in message
            assert caught.value.exit_code == 1
        with second.lock(lock_file):  # released on leaving the block
            pass


def test_ledgers_in_other_schemas_do_not_block_each_other(postgresql_database, request) -> None:
    other = request.getfixturevalue(
        "postgresql_database"
    )  # the same fixture gives one schema per test
    assert other.url == postgresql_database.url
    admin_url = request.getfixturevalue("pg_admin_url")
    schema = "t_lock_other_" + str(os.getpid())
    admin = sa.create_engine(admin_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        other_url = sa.make_url(admin_url).update_query_dict({"options": f"-csearch_path={schema}"})
        with (
            Ledger.open(postgresql_database.url) as one,
            Ledger.open(other_url.render_as_string(hide_password=False)) as two,
            one.lock(Path("unused")),
            two.lock(Path("unused")),
        ):
            pass
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _backend_gone(url: str, backend: int) -> None:
    """PostgreSQL ends a dead client's session on its own; wait for that, bounded."""
    engine = sa.create_engine(url)
    deadline = time.monotonic() + 30
    try:
        with engine.connect() as conn:
            while conn.execute(
                sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"), {"p": backend}
            ).scalar_one():
                assert time.monotonic() < deadline, "PostgreSQL kept the killed holder's session"
                conn.rollback()
                time.sleep(0.05)
    finally:
        engine.dispose()


def test_a_holder_killed_with_sigkill_does_not_leave_the_lock_stuck(
    database, tmp_path: Path
) -> None:
    lock_file = tmp_path / "backfill.lock"
    Ledger.open(database.url).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, database.url, str(lock_file)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        run, backend = (int(x) for x in holder.stdout.readline().split())
        with Ledger.open(database.url) as ledger:
            with (
                pytest.raises(LockHeld, match=f"pid {holder.pid}, run {run}"),
                ledger.lock(lock_file),
            ):
                pass
            holder.send_signal(signal.SIGKILL)
            holder.wait(timeout=30)
            if backend:
                _backend_gone(database.url, backend)
            with ledger.lock(lock_file) as held:
                assert held.holder.pid == os.getpid()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        holder.stdin.close()
        holder.stdout.close()
