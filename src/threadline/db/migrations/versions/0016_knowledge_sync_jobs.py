"""knowledge sync jobs: which procrastinate job ran each knowledge sync

Revision ID: 0016_knowledge_sync_jobs
Revises: 0015_theme_entities
Create Date: 2026-12-14

`knowledge_syncs.job_id` is the `threadline.knowledge_sync` job that ran the sync (NULL for a
sync run in the foreground by `threadline knowledge sync`), like `source_syncs.job_id`.
"""

import sqlalchemy as sa
from alembic import op

revision = "0016_knowledge_sync_jobs"
down_revision = "0015_theme_entities"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("knowledge_syncs", sa.Column("job_id", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    op.drop_column("knowledge_syncs", "job_id")
