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

import sqlalchemy as sa
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
    if check:
        with translate_errors(role, url), engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    return engine


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
