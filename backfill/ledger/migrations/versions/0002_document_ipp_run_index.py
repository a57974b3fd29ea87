"""One patient's documents in a run's charge, found by one index.

Revision 0002. `pending_documents` asks for (ipp, run_id). With an index on ipp alone SQLite,
which keeps no statistics here, chose the (run_id, state) index instead and read every
document of the run for each patient: a run's cost grew with the square of its size.
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_bf_document_ipp_run", "bf_document", ["ipp", "run_id"])
    op.drop_index("ix_bf_document_ipp", table_name="bf_document")


def downgrade() -> None:
    op.create_index("ix_bf_document_ipp", "bf_document", ["ipp"])
    op.drop_index("ix_bf_document_ipp_run", table_name="bf_document")
