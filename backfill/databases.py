"""Opening the databases the engine talks to (the DPI, the ledger), with errors a person can act on.

A wrong URL or an unreachable server becomes a `DataSourceError` naming the database's role and
its URL with the password hidden; the driver's own words follow.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from backfill.errors import DataSourceError
from backfill.outputs import FILE_MODE, private_folder

__all__ = ["describe_url", "open_engine", "translate_errors"]


def describe_url(url: str) -> str:
    """The URL as it may appear in a message or a log: no password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparseable URL>"


def _first_line(exc: BaseException) -> str:
    cause = getattr(exc, "orig", None) or exc
    return str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__


def open_engine(
    url: str, role: str, *, check: bool = True, must_exist: bool = False, **kwargs: object
) -> Engine:
    """An engine for `url`; with `check`, one round trip proves the database answers.

    `must_exist` is for databases we only read (the DPI): SQLite would otherwise create an
    empty file at a mistyped path and report missing tables instead of a missing file.
    """
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError:
        parsed = None
    if (
        must_exist
        and parsed is not None
        and parsed.get_backend_name() == "sqlite"
        and parsed.database not in (None, "", ":memory:")
        and not Path(parsed.database).is_file()
    ):
        raise DataSourceError(f"the {role} database file {parsed.database} does not exist")
    if parsed is not None and parsed.get_backend_name() == "sqlite":
        _create_private_sqlite_file(parsed.database)
    try:
        engine = sa.create_engine(url, **kwargs)  # type: ignore[arg-type]
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ValueError) as exc:
        raise DataSourceError(
            f"the {role} URL {describe_url(url)!r} is not a SQLAlchemy URL this installation can "
            f"use ({_first_line(exc)}); examples: sqlite:///dpi.sqlite, "
            "postgresql+psycopg://user@host:5432/dbname"
        ) from exc
    if check:
        with translate_errors(role, url), engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    return engine


def _create_private_sqlite_file(database: str | None) -> None:
    """A SQLite file we are about to create is made 0600 in 0700 folders first (it holds
    patients' data; SQLite gives its -wal and -shm files the same mode as the database's)."""
    if database in (None, "", ":memory:") or database.startswith("file:"):
        return
    path = Path(database)
    if path.exists():
        return
    with suppress(OSError):  # a path we cannot create is reported by the driver, with its words
        private_folder(path.parent)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))


@contextmanager
def translate_errors(role: str, url: str) -> Iterator[None]:
    """Turn the driver's connection and SQL errors into a `DataSourceError` for `role`."""
    try:
        yield
    except sa.exc.OperationalError as exc:
        raise DataSourceError(
            f"cannot use the {role} database at {describe_url(url)}: {_first_line(exc)}"
        ) from exc
    except sa.exc.DatabaseError as exc:
        raise DataSourceError(
            f"the {role} database at {describe_url(url)} refused a query: {_first_line(exc)}"
        ) from exc
