"""run_stories.priority: the named factors behind a story's rank and severity, per run

Revision ID: 0006_story_priority
Revises: 0005_snapshots
Create Date: 2026-11-29

Offline priority is explained (issue 14): every story snapshot keeps the factors that
produced its score (reach, companies, customer value, recency, trend, severity signals,
conversation type), each with its value, multiplier and reason, its severity signals and
the notes on its evidence (thin or repetitive), as JSON written by
`threadline.stories.priority`. The factors live in the run's snapshot because a snapshot
never changes: a later run computes its own. Snapshots written before this revision get
`{}` (their factors were not recorded).
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006_story_priority"
down_revision = "0005_snapshots"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("run_stories", sa.Column("priority", JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")))


def downgrade() -> None:
    op.drop_column("run_stories", "priority")
