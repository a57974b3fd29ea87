"""The ledger's statements kept in `sql/` files, loaded once per dialect as prepared text.

A file holds statements each under a `-- name: NAME` line (the procrastinate way); `{for_update}`
becomes `FOR UPDATE` on PostgreSQL and nothing on SQLite, and `{other}` the SQL named `other`
(a condition written once, used by several statements). Parameters that carry instants are
typed here, so they are stored as the rest of the ledger stores them (naive UTC).

`statements` gives them as SQLAlchemy text; `DriverStatements` as the database driver's own
SQL, run on the cursor of a SQLAlchemy connection (inside its transaction): the sender's path,
where SQLAlchemy's work per execution cost more than the database's.
"""

from __future__ import annotations

import re
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql.elements import TextClause

from backfill.ledger.schema import UtcDateTime
from backfill.resources import read_sql

__all__ = ["DriverStatements", "parse_named", "statements"]

_INSTANTS = ("now", "next_attempt_at", "acked_at")
_LISTS = ("ids",)
_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


def parse_named(text: str) -> dict[str, str]:
    """Each `-- name:` block's SQL, without its comment lines."""
    parts = _NAME.split(text)
    named: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in named:
            raise ValueError(f"statement {name!r} is named twice")
        lines = [line for line in body.splitlines() if not line.lstrip().startswith("--")]
        named[name] = "\n".join(lines).strip()
    return named


def _written(file_name: str, dialect: str) -> dict[str, str]:
    """Each named statement of `sql/<file_name>` with its `{…}` pieces put in, for this dialect."""
    named = parse_named(read_sql(file_name))
    pieces = {"{for_update}": "FOR UPDATE" if dialect == "postgresql" else ""}
    pieces.update({"{" + name + "}": sql for name, sql in named.items()})
    written = {}
    for name, sql in named.items():
        text = sql
        for mark, piece in pieces.items():
            text = text.replace(mark, piece)
        written[name] = text
    return written


@cache
def statements(file_name: str, dialect: str) -> dict[str, TextClause]:
    """The named statements of `sql/<file_name>` for this dialect (`sqlite`, `postgresql`)."""
    prepared = {}
    for name, sql in _written(file_name, dialect).items():
        clause = sa.text(sql)
        used = set(clause._bindparams)  # the :names this statement has
        typed = [sa.bindparam(n, type_=UtcDateTime()) for n in _INSTANTS if n in used]
        typed += [sa.bindparam(n, expanding=True) for n in _LISTS if n in used]
        prepared[name] = clause.bindparams(*typed) if typed else clause
    return prepared


_PARAMETER = re.compile(r"(?<![:\w]):(\w+)")


class DriverStatements:
    """The named statements of `sql/<file_name>` in the driver's parameter style, run on the
    DBAPI cursor of a SQLAlchemy connection, in the transaction it has open.

    The same SQL as `statements` gives, bound the same way: instants through `UtcDateTime`'s
    own processing (the bytes SQLAlchemy would send), a list parameter (`IN :ids`) spread over
    one placeholder per item; rows come back as named tuples, errors as SQLAlchemy's. Only
    for statements whose results carry no instants (those would come back as the driver gives
    them: text on SQLite).
    """

    def __init__(self, file_name: str, dialect: Dialect) -> None:
        if dialect.paramstyle not in ("named", "qmark", "pyformat"):
            raise ValueError(f"no driver statements for the {dialect.paramstyle} style")
        # sqlite3 takes :name whatever SQLAlchemy asks of it; psycopg takes %(name)s.
        self._named = dialect.name == "sqlite"
        self._written = _written(file_name, dialect.name)
        bind = UtcDateTime().dialect_impl(dialect).bind_processor(dialect)
        self._instant: Callable[[Any], Any] = bind if bind is not None else (lambda v: v)
        self._dbapi_error: type[Exception] = dialect.loaded_dbapi.Error
        self._dialect = dialect
        self._sql: dict[tuple[str, int], str] = {}
        self._rows: dict[tuple[str, ...], Any] = {}

    def _text(self, name: str, items: int) -> str:
        key = (name, items)
        if (sql := self._sql.get(key)) is None:
            sql = self._written[name]
            for listed in _LISTS:
                spread = ", ".join(f":{listed}_{n}" for n in range(items))
                sql = re.sub(rf"(?<![:\w]):{listed}\b", f"({spread})", sql)
            if not self._named:
                sql = _PARAMETER.sub(r"%(\1)s", sql.replace("%", "%%"))
            self._sql[key] = sql
        return sql

    def _bound(self, params: Mapping[str, Any]) -> dict[str, Any]:
        bound = dict(params)
        for name in _INSTANTS:
            if name in bound:
                bound[name] = self._instant(bound[name])
        for listed in _LISTS:
            if listed in bound:
                bound.update((f"{listed}_{n}", v) for n, v in enumerate(bound.pop(listed)))
        return bound

    def run(self, conn: Connection, name: str, params: Mapping[str, Any]) -> list[Any]:
        """Execute `name` once; its rows (none for a statement that returns none)."""
        items = max((len(params[n]) for n in _LISTS if n in params), default=0)
        sql, bound = self._text(name, items), self._bound(params)
        cursor = conn.connection.cursor()
        try:
            cursor.execute(sql, bound)
            if cursor.description is None:
                return []
            names = tuple(column[0] for column in cursor.description)
            if (row := self._rows.get(names)) is None:
                row = self._rows[names] = namedtuple("Row", names)  # type: ignore[misc]
            return [row._make(values) for values in cursor.fetchall()]
        except self._dbapi_error as exc:
            raise self._wrapped(sql, bound, exc) from exc
        finally:
            cursor.close()

    def run_many(self, conn: Connection, name: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Execute `name` once per parameter set (no list parameters, no results)."""
        sql = self._text(name, 0)
        bound = [self._bound(params) for params in rows]
        cursor = conn.connection.cursor()
        try:
            cursor.executemany(sql, bound)
        except self._dbapi_error as exc:
            raise self._wrapped(sql, bound, exc) from exc
        finally:
            cursor.close()

    def _wrapped(self, sql: str, params: Any, exc: Exception) -> sa.exc.DBAPIError:
        return sa.exc.DBAPIError.instance(  # type: ignore[no-any-return]
            sql, params, exc, self._dbapi_error, dialect=self._dialect
        )
