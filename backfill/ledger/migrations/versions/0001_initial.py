"""The first ledger: documents, patients, runs, the attempt log and the run lock's holder.

Revision 0001. Written out column by column (not from `schema.metadata`) so this revision keeps
creating the same tables when later revisions change the model.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "bf_run",
        sa.Column("run_id", _Id, primary_key=True, autoincrement=True),
        sa.Column("mode", sa.String(32), nullable=False),
        sa.Column("rule_name", sa.String(200)),
        sa.Column("rule_digest", sa.String(128)),
        sa.Column("as_of", sa.DateTime()),
        sa.Column("options", sa.JSON()),
        sa.Column("taken", sa.Integer(), nullable=False),
        sa.Column("counts", sa.JSON()),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime()),
        sa.Column("exit_status", sa.Integer()),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
    )
    op.create_table(
        "bf_patient",
        sa.Column("ipp", sa.String(64), primary_key=True),
        sa.Column("dmp_status", sa.String(16), nullable=False),
        sa.Column("recheck_at", sa.DateTime()),
        sa.Column("code", sa.String(64)),
        sa.Column("urgent", sa.Boolean(), nullable=False),
        sa.Column("last_stay_at", sa.DateTime()),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_bf_patient_priority", "bf_patient", ["urgent", "last_stay_at"])
    op.create_table(
        "bf_document",
        sa.Column("document_id", sa.String(64), primary_key=True),
        sa.Column("set_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("ipp", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16)),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("replaces_unique_id", sa.String(128)),
        sa.Column("unique_id", sa.String(128)),
        sa.Column("hash", sa.String(64)),
        sa.Column("size", sa.BigInteger()),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime()),
        sa.Column("last_code", sa.String(64)),
        sa.Column("last_text", sa.String(1000)),
        sa.Column("submission_set_id", sa.String(128)),
        sa.Column("attempt_id", sa.BigInteger()),
        sa.Column("selected_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("acked_at", sa.DateTime()),
        sa.Column("selected_run_id", _Id, sa.ForeignKey("bf_run.run_id"), nullable=False),
        sa.Column("run_id", _Id, sa.ForeignKey("bf_run.run_id"), nullable=False),
    )
    op.create_index("ix_bf_document_state_ipp", "bf_document", ["state", "ipp"])
    op.create_index("ix_bf_document_ipp", "bf_document", ["ipp"])
    op.create_index("ix_bf_document_set", "bf_document", ["set_id", "version"])
    op.create_index("ix_bf_document_run", "bf_document", ["run_id", "state"])
    op.create_table(
        "bf_attempt",
        sa.Column("attempt_id", _Id, primary_key=True, autoincrement=True),
        sa.Column("run_id", _Id, sa.ForeignKey("bf_run.run_id")),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("ipp", sa.String(64)),
        sa.Column("submission_set_id", sa.String(128)),
        sa.Column("documents", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(32)),
        sa.Column("http_status", sa.Integer()),
        sa.Column("latency", sa.Float()),
        sa.Column("detail", sa.Text()),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime()),
    )
    op.create_index("ix_bf_attempt_run", "bf_attempt", ["run_id"])
    op.create_index("ix_bf_attempt_ipp", "bf_attempt", ["ipp"])
    op.create_table(
        "bf_attempt_document",
        sa.Column("attempt_id", _Id, sa.ForeignKey("bf_attempt.attempt_id"), primary_key=True),
        sa.Column("document_id", sa.String(64), primary_key=True),
        sa.Column("unique_id", sa.String(128)),
        sa.Column("hash", sa.String(64)),
        sa.Column("size", sa.BigInteger()),
        sa.Column("from_state", sa.String(16), nullable=False),
        sa.Column("result", sa.String(16)),
        sa.Column("code", sa.String(64)),
        sa.Column("text", sa.String(1000)),
    )
    op.create_index("ix_bf_attempt_document_document", "bf_attempt_document", ["document_id"])
    op.create_table(
        "bf_lock",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.BigInteger()),
        sa.Column("since", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    for table in ("bf_lock", "bf_attempt_document", "bf_attempt", "bf_document", "bf_patient"):
        op.drop_table(table)
    op.drop_table("bf_run")
