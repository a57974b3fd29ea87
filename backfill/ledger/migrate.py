"""The ledger's schema versions: Alembic run programmatically from the migrations shipped in the package.

`upgrade` brings a ledger to this engine's head revision (an empty database gets every table);
a ledger stamped with a revision this engine does not know was made by a newer engine and is
refused, naming both revisions. `current_revision` reads the stamp without changing anything
(for the read-only commands).
"""

from __future__ import annotations

import logging
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from backfill.errors import LedgerSchemaError
from backfill.ledger.schema import VERSION_TABLE
from backfill.logs import get_logger

__all__ = ["current_revision", "head_revision", "upgrade"]

# Alembic narrates every connection at INFO; the engine says itself when a ledger changes.
logging.getLogger("alembic").setLevel(logging.WARNING)
log = get_logger(__name__)

# A plain folder inside the package: a wheel installs it as files, which Alembic needs.
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head_revision() -> str:
    """The revision this engine's code expects."""
    head = _scripts().get_current_head()
    assert head is not None, "the ledger migrations have no head"
    return head


def current_revision(conn: Connection) -> str | None:
    """The ledger's stamped revision; None when it has none (an empty database)."""
    context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def check_known(revision: str | None, where: str) -> None:
    """Refuse a ledger stamped by a newer engine (a revision our migrations do not contain)."""
    if revision is None:
        return
    try:
        known = _scripts().get_revision(revision)
    except Exception:  # alembic raises several kinds for an unknown id
        known = None
    if known is None:
        raise LedgerSchemaError(
            f"the ledger at {where} has schema revision {revision}, newer than this engine's "
            f"{head_revision()}: upgrade dmp-backfill (or point [ledger] url at another ledger)"
        )


def upgrade(conn: Connection, where: str) -> None:
    """Bring the ledger on `conn` (inside a transaction) to the head revision."""
    before = current_revision(conn)
    check_known(before, where)
    head = head_revision()
    if before == head:
        return
    config = _config()
    config.attributes["connection"] = conn
    command.upgrade(config, "head")
    log.info("ledger schema upgraded", ledger=where, from_revision=before, to_revision=head)


def has_version_table(conn: Connection) -> bool:
    return sa.inspect(conn).has_table(VERSION_TABLE)
