"""knowledge scope: knowledge sources attached to conversation sources, and the knowledge each run used

Revision ID: 0017_knowledge_scope
Revises: 0016_knowledge_sync_jobs
Create Date: 2026-12-14

- `source_knowledge`: which knowledge sources a conversation source is answered by (one row
  per pair; deleting either side deletes the attachment). A run's `coverage` stage uses the
  knowledge attached to any source of its scope, or all knowledge when none is attached.
- `run_knowledge_sources`: the knowledge sources a run's `coverage` stage used, written once
  by that run (a snapshot: a later attach, detach or deletion never changes it). The id is
  kept without a foreign key and the name copied, so the record outlives the knowledge source;
  `attached` is false when the run used all knowledge because no source of its scope had any.
"""

import sqlalchemy as sa
from alembic import op

revision = "0017_knowledge_scope"
down_revision = "0016_knowledge_sync_jobs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "source_knowledge",
        sa.Column("source_id", sa.BigInteger(), sa.ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True),
        sa.Column(
            "knowledge_source_id",
            sa.BigInteger(),
            sa.ForeignKey("knowledge_sources.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    )
    # ON DELETE CASCADE from knowledge_sources looks the rows up by this column (the key leads with source_id)
    op.create_index("ix_source_knowledge_knowledge_source_id", "source_knowledge", ["knowledge_source_id"])
    op.create_table(
        "run_knowledge_sources",
        sa.Column("run_id", sa.BigInteger(), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("knowledge_source_id", sa.BigInteger(), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("attached", sa.Boolean(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("run_knowledge_sources")
    op.drop_index("ix_source_knowledge_knowledge_source_id", table_name="source_knowledge")
    op.drop_table("source_knowledge")
