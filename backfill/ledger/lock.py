"""The run lock: two runs (or a run and `retry`) never work on one ledger at the same time.

SQLite ledgers lock a file (`[run] lock_file`) with `flock`; the holder (host, pid, run id,
since) is written inside it. PostgreSQL ledgers take a session advisory lock keyed on the
ledger's schema, so ledgers in other schemas of the same server do not block each other, and
record the holder in `bf_lock`. Either lock belongs to the holder's process or connection: a
holder killed with SIGKILL releases it (the kernel closes the file, the server ends the session),
so a crash never leaves the ledger locked.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from backfill.errors import ConfigError, LockHeld
from backfill.ledger.schema import bf_lock

__all__ = ["Holder", "RunLock", "acquire"]

_LOCK_NAME = "run"
# The constant half of the advisory lock key; the other half is the ledger's schema.
_KEY_SALT = "dmp-backfill ledger run lock"


@dataclass(frozen=True)
class Holder:
    """Who holds the lock: enough for an operator to find the process."""

    host: str
    pid: int
    run_id: int | None
    since: dt.datetime

    @classmethod
    def me(cls, run_id: int | None = None) -> Holder:
        return cls(socket.gethostname(), os.getpid(), run_id, dt.datetime.now(dt.UTC))

    def describe(self) -> str:
        run = f"run {self.run_id}" if self.run_id is not None else "no run started yet"
        return f"host {self.host}, pid {self.pid}, {run}, since {self.since.isoformat(timespec='seconds')}"

    def as_json(self) -> str:
        return json.dumps(
            {
                "host": self.host,
                "pid": self.pid,
                "run_id": self.run_id,
                "since": self.since.isoformat(),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Holder | None:
        try:
            data = json.loads(text)
            return cls(
                str(data["host"]),
                int(data["pid"]),
                None if data["run_id"] is None else int(data["run_id"]),
                dt.datetime.fromisoformat(data["since"]),
            )
        except (ValueError, KeyError, TypeError):
            return None


class RunLock:
    """A held lock; `attach_run` names the run in the holder record, `release` lets go."""

    def __init__(self, holder: Holder) -> None:
        self.holder = holder

    def attach_run(self, run_id: int) -> None:
        self.holder = Holder(self.holder.host, self.holder.pid, run_id, self.holder.since)
        self._record()

    def _record(self) -> None:
        raise NotImplementedError

    def release(self) -> None:
        raise NotImplementedError


class _FileLock(RunLock):
    def __init__(self, path: Path) -> None:
        super().__init__(Holder.me())
        self.path = path
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigError(
                f"cannot open the run lock file {path} ([run] lock_file): {exc.strerror}"
            ) from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(self.fd, 4096, 0).decode("utf-8", "replace")
            os.close(self.fd)
            holder = Holder.from_json(text)
            raise LockHeld(
                f"another backfill holds the ledger's run lock ({path}): "
                + (holder.describe() if holder else "holder unknown")
            ) from None
        self._record()

    def _record(self) -> None:
        data = (self.holder.as_json() + "\n").encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)
        os.fsync(self.fd)

    def release(self) -> None:
        os.ftruncate(self.fd, 0)
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def advisory_key(conn: Connection) -> int:
    """A signed 64-bit key from the ledger's schema and a constant (advisory locks are per database)."""
    schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
    digest = hashlib.blake2b(f"{_KEY_SALT}:{schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class _AdvisoryLock(RunLock):
    def __init__(self, engine: Engine) -> None:
        super().__init__(Holder.me())
        self.engine = engine
        # Its own session, outside any transaction: the lock lives as long as this connection.
        self.conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        self.key = advisory_key(self.conn)
        got = self.conn.execute(sa.select(sa.func.pg_try_advisory_lock(self.key))).scalar_one()
        self.conn.commit()
        if not got:
            row = self.conn.execute(sa.select(bf_lock).where(bf_lock.c.name == _LOCK_NAME)).first()
            self.conn.close()
            holder = Holder(row.host, row.pid, row.run_id, row.since) if row else None
            raise LockHeld(
                "another backfill holds this ledger's run lock (PostgreSQL advisory lock): "
                + (holder.describe() if holder else "holder unknown")
            )
        self._record()

    def _record(self) -> None:
        values = {
            "host": self.holder.host,
            "pid": self.holder.pid,
            "run_id": self.holder.run_id,
            "since": self.holder.since,
        }
        # Autocommit session: each statement commits on its own; only this holder writes here.
        self.conn.execute(sa.delete(bf_lock).where(bf_lock.c.name == _LOCK_NAME))
        self.conn.execute(sa.insert(bf_lock).values(name=_LOCK_NAME, **values))
        self.conn.commit()

    def release(self) -> None:
        try:
            self.conn.execute(sa.select(sa.func.pg_advisory_unlock(self.key)))
        finally:
            self.conn.close()


def acquire(engine: Engine, lock_file: Path) -> RunLock:
    """Take the run lock of the ledger behind `engine`, or raise `LockHeld` naming the holder."""
    if engine.dialect.name == "postgresql":
        return _AdvisoryLock(engine)
    return _FileLock(lock_file)
