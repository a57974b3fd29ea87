"""The ledger's tables (prefix `bf_`) as SQLAlchemy Core, the one definition the engine writes through.

`sql/ledger.sql` is the same schema as text people read; the Alembic migrations in
`backfill/ledger/migrations/` create it. A test creates the ledger each way on SQLite and
PostgreSQL and compares the reflected schemas with these tables.

Timestamps are UTC instants; they are stored without a time zone (SQLite has none) and come
back aware, in UTC.
"""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect

__all__ = [
    "VERSION_TABLE",
    "UtcDateTime",
    "bf_attempt",
    "bf_attempt_document",
    "bf_document",
    "bf_lock",
    "bf_patient",
    "bf_run",
    "ledger_ddl",
    "metadata",
]

# Alembic's bookkeeping table, prefixed like ours so a shared schema shows what belongs to us.
VERSION_TABLE = "bf_alembic_version"


class UtcDateTime(TypeDecorator[dt.datetime]):
    """An aware instant stored as naive UTC (portable); naive values are refused, not guessed."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("the ledger stores aware instants only (got a naive datetime)")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        return None if value is None else value.replace(tzinfo=dt.UTC)


# SQLite autoincrements only an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
_Id = BigInteger().with_variant(Integer, "sqlite")

metadata = MetaData()

bf_run = Table(
    "bf_run",
    metadata,
    Column("run_id", _Id, primary_key=True, autoincrement=True),
    Column("mode", String(32), nullable=False),
    Column("rule_name", String(200)),
    Column("rule_digest", String(128)),
    Column("as_of", UtcDateTime),
    Column("options", JSON),
    Column("taken", Integer, nullable=False),
    Column("counts", JSON),
    Column("started_at", UtcDateTime, nullable=False),
    Column("ended_at", UtcDateTime),
    Column("exit_status", Integer),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
)

bf_patient = Table(
    "bf_patient",
    metadata,
    Column("ipp", String(64), primary_key=True),
    Column("dmp_status", String(16), nullable=False),
    Column("recheck_at", UtcDateTime),
    Column("code", String(64)),
    Column("urgent", Boolean, nullable=False),
    Column("last_stay_at", UtcDateTime),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_bf_patient_priority", "urgent", "last_stay_at"),
)

bf_document = Table(
    "bf_document",
    metadata,
    Column("document_id", String(64), primary_key=True),
    Column("set_id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("ipp", String(64), nullable=False),
    Column("kind", String(16)),
    Column("state", String(16), nullable=False),
    Column("replaces_unique_id", String(128)),
    Column("unique_id", String(128)),
    Column("hash", String(64)),
    Column("size", BigInteger),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime),
    Column("last_code", String(64)),
    Column("last_text", String(1000)),
    Column("submission_set_id", String(128)),
    Column("attempt_id", BigInteger),
    Column("selected_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("acked_at", UtcDateTime),
    Column("selected_run_id", _Id, ForeignKey("bf_run.run_id"), nullable=False),
    Column("run_id", _Id, ForeignKey("bf_run.run_id"), nullable=False),
    Index("ix_bf_document_state_ipp", "state", "ipp"),
    Index("ix_bf_document_ipp_run", "ipp", "run_id"),  # see sql/ledger.sql
    Index("ix_bf_document_set", "set_id", "version"),
    Index("ix_bf_document_run", "run_id", "state"),
)

bf_attempt = Table(
    "bf_attempt",
    metadata,
    Column("attempt_id", _Id, primary_key=True, autoincrement=True),
    Column("run_id", _Id, ForeignKey("bf_run.run_id")),
    Column("action", String(16), nullable=False),
    Column("ipp", String(64)),
    Column("submission_set_id", String(128)),
    Column("documents", Integer, nullable=False),
    Column("outcome", String(32)),
    Column("http_status", Integer),
    Column("latency", Float),
    Column("detail", Text),
    Column("started_at", UtcDateTime, nullable=False),
    Column("ended_at", UtcDateTime),
    Index("ix_bf_attempt_run", "run_id"),
    Index("ix_bf_attempt_ipp", "ipp"),
)

bf_attempt_document = Table(
    "bf_attempt_document",
    metadata,
    Column("attempt_id", _Id, ForeignKey("bf_attempt.attempt_id"), primary_key=True),
    Column("document_id", String(64), primary_key=True),
    Column("unique_id", String(128)),
    Column("hash", String(64)),
    Column("size", BigInteger),
    Column("from_state", String(16), nullable=False),
    Column("result", String(16)),
    Column("code", String(64)),
    Column("text", String(1000)),
    Index("ix_bf_attempt_document_document", "document_id"),
)

bf_lock = Table(
    "bf_lock",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("run_id", BigInteger),
    Column("since", UtcDateTime, nullable=False),
)


def ledger_ddl(sql_text: str, dialect: str) -> list[str]:
    """The statements of `sql/ledger.sql`, with the identity keys written for `dialect`."""
    text = re.sub(r"--[^\n]*", "", sql_text)
    if dialect == "sqlite":
        text = text.replace("BIGINT GENERATED BY DEFAULT AS IDENTITY", "INTEGER NOT NULL")
    return [stmt.strip() for stmt in text.split(";") if stmt.strip()]
