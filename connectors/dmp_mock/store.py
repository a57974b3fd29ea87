"""The mock DMP's storage: patients' DMP states, documents, submission sets (SQLAlchemy Core).

SQLite by default (a file, or memory for tests), PostgreSQL works the same. Every write of a
submission happens in one transaction: a set that fails stores nothing.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import StaticPool

__all__ = ["documents", "metadata", "open_store", "patients", "submissions"]

metadata = sa.MetaData()

patients = sa.Table(
    "mock_patient",
    metadata,
    sa.Column("ins", sa.String(32), primary_key=True),
    sa.Column("oid", sa.String(64), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),
)

documents = sa.Table(
    "mock_document",
    metadata,
    sa.Column("unique_id", sa.String(128), primary_key=True),
    sa.Column("entry_uuid", sa.String(64), nullable=False, unique=True),
    sa.Column("patient_id", sa.String(128), nullable=False),
    sa.Column("hash", sa.String(40), nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("type_code", sa.String(32), nullable=False),
    sa.Column("title", sa.String(500), nullable=False),
    sa.Column("submission_set", sa.String(128), nullable=False),
    sa.Column("replaces", sa.String(128)),
    sa.Column("submissions", sa.Integer, nullable=False),
    sa.Column("content", sa.LargeBinary, nullable=False),
    sa.Index("ix_mock_document_patient", "patient_id"),
)

submissions = sa.Table(
    "mock_submission",
    metadata,
    sa.Column("unique_id", sa.String(128), primary_key=True),
    sa.Column("patient_id", sa.String(128), nullable=False),
    sa.Column("documents", sa.Integer, nullable=False),
)


def open_store(url: str) -> Engine:
    """An engine on the mock's database, tables created if missing."""
    kwargs: dict[str, object] = {}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False}
        if url in ("sqlite://", "sqlite:///:memory:"):
            kwargs["poolclass"] = StaticPool
        _create_private_file(make_url(url).database)
    engine = sa.create_engine(url, **kwargs)  # type: ignore[arg-type]
    if url.startswith("sqlite"):

        @sa.event.listens_for(engine, "connect")
        def _wal(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

    metadata.create_all(engine)
    return engine


def _create_private_file(database: str | None) -> None:
    """The store holds patients' documents: a new SQLite file is 0600 (in a folder already there:
    a mistyped path is SQLite's error to report, not a folder to create)."""
    if database in (None, "", ":memory:") or database.startswith("file:"):
        return
    path = Path(database)
    with contextlib.suppress(OSError):  # reported by SQLite itself, in its words
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
