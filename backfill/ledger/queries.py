"""The ledger's statements kept in `sql/` files, loaded once per dialect as prepared text.

A file holds statements each under a `-- name: NAME` line (the procrastinate way); `{for_update}`
becomes `FOR UPDATE` on PostgreSQL and nothing on SQLite, and `{other}` the SQL named `other`
(a condition written once, used by several statements). Parameters that carry instants are
typed here, so they are stored as the rest of the ledger stores them (naive UTC).
"""

from __future__ import annotations

import re
from functools import cache

import sqlalchemy as sa
from sqlalchemy.sql.elements import TextClause

from backfill.ledger.schema import UtcDateTime
from backfill.resources import read_sql

__all__ = ["parse_named", "statements"]

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


@cache
def statements(file_name: str, dialect: str) -> dict[str, TextClause]:
    """The named statements of `sql/<file_name>` for this dialect (`sqlite`, `postgresql`)."""
    named = parse_named(read_sql(file_name))
    pieces = {"{for_update}": "FOR UPDATE" if dialect == "postgresql" else ""}
    pieces.update({"{" + name + "}": sql for name, sql in named.items()})
    prepared = {}
    for name, written in named.items():
        sql = written
        for mark, piece in pieces.items():
            sql = sql.replace(mark, piece)
        clause = sa.text(sql)
        used = set(clause._bindparams)  # the :names this statement has
        typed = [sa.bindparam(n, type_=UtcDateTime()) for n in _INSTANTS if n in used]
        typed += [sa.bindparam(n, expanding=True) for n in _LISTS if n in used]
        prepared[name] = clause.bindparams(*typed) if typed else clause
    return prepared
