"""Alembic's entry point for the ledger: run on the connection `backfill.ledger.migrate` passes in.

There is no alembic.ini and no URL here: the engine opens the ledger itself and hands Alembic
a connection already inside the migration's transaction (and, on PostgreSQL, its lock).
"""

from __future__ import annotations

from alembic import context

from backfill.ledger.schema import VERSION_TABLE, metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=True,  # SQLite alters a table by copying it; batch mode does that for us
)
with context.begin_transaction():
    context.run_migrations()
