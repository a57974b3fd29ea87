"""Opening the databases the engine talks to (the DPI, the ledger), with errors a person can act on.

A wrong URL or an unreachable server becomes a `DataSourceError` naming the database's role and
its URL with the password hidden (in `user:pw@` and in `?password=`); the driver's own words
follow. Refused credentials are a `DatabaseAuthError` (exit 2); a driver that is not installed is a
`ConfigError` naming the package and the extra that installs it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

from backfill.errors import ConfigError, DatabaseAuthError, DataSourceError
from backfill.outputs import FILE_MODE

__all__ = ["describe_url", "open_engine", "require_driver", "translate_errors"]

# Query-string keys that carry a secret in some drivers' URLs (psycopg, pyodbc, oracledb…).
_SECRET_KEYS = frozenset({"password", "passwd", "pwd", "pass", "secret", "sslpassword"})

# The Python module a URL's dialect imports → (the package that provides it, our extra or None).
_DRIVERS: dict[str, tuple[str, str | None]] = {
    "oracledb": ("oracledb", "oracle"),
    "cx_Oracle": ("oracledb (use oracle+oracledb:// URLs)", "oracle"),
    "pyodbc": ("pyodbc (and the system's unixODBC + Microsoft ODBC driver)", "mssql"),
    "pymssql": ("pymssql", "mssql"),
    "psycopg2": ("psycopg (installed: use postgresql+psycopg:// URLs)", None),
    "MySQLdb": ("mysqlclient", None),
    "pymysql": ("PyMySQL", None),
}

# What SQLite may keep allocated in one process, all its connections together (page caches,
# sorters). Each connection's cache alone may reach 2 MiB (cache_size -2000), and a run holds
# eight (DPI and ledger, read and write) beside the sorter of the ledger's GROUP BY of every
# pending patient: small databases never fill them, large ones do, so a run's peak RSS grew with
# the DPI (bench/send.py (d): SQLite's high-water while sending 13.5 MiB at 20 000 patients, 15.4
# at 60 000; 10.4 at both under this limit, no slower; the whole run's peak 134.1 MiB at 18 000
# and 138.7 at 180 000, was 137.5 and 145.4-146.0). Soft: past it SQLite reuses its cache pages
# and spills sorts to disk sooner, it never fails a query.
SQLITE_HEAP_LIMIT = 8 * 2**20

# How each driver says that the server refused who we are.
_AUTH_REFUSED = re.compile(
    r'role "[^"]*" does not exist|password authentication failed|no password supplied'
    r"|pg_hba\.conf|ORA-01017|Login failed for user|Access denied for user",
    re.IGNORECASE,
)


def _secrets(url: str) -> list[str]:
    try:
        parsed = make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        return []
    found = [parsed.password] if parsed.password else []
    for key, value in parsed.query.items():
        if key.lower() in _SECRET_KEYS:
            found.extend([value] if isinstance(value, str) else value)
    return [str(s) for s in found if s]


def describe_url(url: str) -> str:
    """The URL as it may appear in a message or a log: no password, in the user part or the query."""
    try:
        parsed = make_url(url)
    except (sa.exc.ArgumentError, ValueError):  # ValueError: a port that is not a number
        return "<unparseable URL>"
    hidden = {key: "HIDDEN" for key in parsed.query if key.lower() in _SECRET_KEYS}
    if hidden:
        parsed = parsed.update_query_dict(hidden)
    text = parsed.render_as_string(hide_password=True)
    return text.replace("=HIDDEN", "=***") if hidden else text


def _first_line(exc: BaseException, url: str = "") -> str:
    cause = getattr(exc, "orig", None) or exc
    text = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    for secret in _secrets(url):
        text = text.replace(secret, "***")
    return text


def require_driver(url: str, role: str) -> None:
    """Fail with a ConfigError naming the package (and extra) when `url`'s driver is missing."""
    try:
        dialect = make_url(url).get_dialect()
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ValueError):
        return  # not a URL we can judge: create_engine reports it
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        module = exc.name or str(exc)
        package, extra = _DRIVERS.get(module, (module, None))
        how = (
            f"pip install 'dmp-backfill[{extra}]'"
            if extra
            else f"install {package.split(' ')[0]}; dmp-backfill ships no extra for it"
        )
        raise ConfigError(
            f"the {role} URL {describe_url(url)!r} needs the Python driver {package}, which is "
            f"not installed: {how}"
        ) from None


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
    except ValueError:  # SQLAlchemy's int() of the port
        raise ConfigError(
            f"the {role} URL is not usable: its port must be a number (e.g. "
            "postgresql+psycopg://user@host:5432/dbname)"
        ) from None
    if (
        must_exist
        and parsed is not None
        and parsed.get_backend_name() == "sqlite"
        and parsed.database not in (None, "", ":memory:")
        and not Path(parsed.database).is_file()
    ):
        raise DataSourceError(f"the {role} database file {parsed.database} does not exist")
    require_driver(url, role)
    if parsed is not None and parsed.get_backend_name() == "sqlite":
        _create_private_sqlite_file(parsed.database)
    try:
        engine = sa.create_engine(url, **kwargs)  # type: ignore[arg-type]
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ValueError) as exc:
        raise DataSourceError(
            f"the {role} URL {describe_url(url)!r} is not a SQLAlchemy URL this installation can "
            f"use ({_first_line(exc, url)}); examples: sqlite:///dpi.sqlite, "
            "postgresql+psycopg://user@host:5432/dbname"
        ) from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _limit_sqlite_heap)
    if check:
        with translate_errors(role, url), engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    return engine


def _limit_sqlite_heap(dbapi_conn: Any, record: Any) -> None:
    """`SQLITE_HEAP_LIMIT` for this process (the pragma sets SQLite's limit, not the connection's)."""
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute(f"PRAGMA soft_heap_limit={SQLITE_HEAP_LIMIT}")
    finally:
        cursor.close()


def _create_private_sqlite_file(database: str | None) -> None:
    """A SQLite file we are about to create is made 0600 first (it holds patients' data; SQLite
    gives its -wal and -shm files the same mode). A missing folder stays SQLite's error."""
    if database in (None, "", ":memory:") or database.startswith("file:"):
        return
    path = Path(database)
    if path.exists():
        return
    with suppress(OSError):  # a path we cannot create is reported by the driver, with its words
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))


@contextmanager
def translate_errors(role: str, url: str) -> Iterator[None]:
    """Turn the driver's connection and SQL errors into a `DataSourceError` for `role`."""
    try:
        yield
    except sa.exc.OperationalError as exc:
        reason = _first_line(exc, url)
        if _AUTH_REFUSED.search(reason):
            raise DatabaseAuthError(
                f"the {role} database at {describe_url(url)} refused the credentials: {reason}"
            ) from exc
        raise DataSourceError(
            f"cannot use the {role} database at {describe_url(url)}: {reason}"
        ) from exc
    except sa.exc.DatabaseError as exc:
        raise DataSourceError(
            f"the {role} database at {describe_url(url)} refused a query: {_first_line(exc, url)}"
        ) from exc
