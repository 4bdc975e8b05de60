"""source_syncs: every sync and import recorded; conversations say which one brought and last changed them

Revision ID: 0008_source_syncs
Revises: 0007_trackers
Create Date: 2026-12-13

Traceability (issue 19, item 5):
- `source_syncs`: one row per sync (Intercom, Zendesk, any connector; CLI, `run --sync` or
  the API's job) and per file import: kind, the procrastinate job when there is one, status,
  start and end, and counters (created, changed, unchanged, deleted, dead letters) that the
  sink increments in the transaction that commits the data they count.
- `conversations.created_by_sync_id` / `changed_by_sync_id`: the sync that inserted the row and
  the last one that changed it (content or deletion). NULL for conversations written before
  this revision (their origin was not recorded), and after the sync row is deleted.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_source_syncs"
down_revision = "0007_trackers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "source_syncs",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("source_id", sa.BigInteger(), sa.ForeignKey("sources.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("job_id", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False, server_default="running"),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("changed", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("unchanged", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("deleted", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("dead_letters", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint("kind IN ('sync', 'import')", name="ck_source_syncs_kind"),
        sa.CheckConstraint("status IN ('running', 'succeeded', 'failed')", name="ck_source_syncs_status"),
    )
    op.create_index("ix_source_syncs_source_id_id", "source_syncs", ["source_id", "id"])
    for column in ("created_by_sync_id", "changed_by_sync_id"):
        op.add_column(
            "conversations",
            sa.Column(column, sa.BigInteger(), sa.ForeignKey("source_syncs.id", ondelete="SET NULL"), nullable=True),
        )
        # ON DELETE SET NULL looks the referencing rows up: without an index, deleting a sync scans conversations
        op.create_index(f"ix_conversations_{column}", "conversations", [column])


def downgrade() -> None:
    for column in ("created_by_sync_id", "changed_by_sync_id"):
        op.drop_index(f"ix_conversations_{column}", table_name="conversations")
        op.drop_column("conversations", column)
    op.drop_index("ix_source_syncs_source_id_id", table_name="source_syncs")
    op.drop_table("source_syncs")
