"""stories.priority: the named factors behind a story's rank and severity

Revision ID: 0005_story_priority
Revises: 0004_drop_vector_hnsw
Create Date: 2026-11-29

Offline priority is explained (issue 14): every story keeps the factors that produced its
score (reach, companies, customer value, recency, trend, severity signals, conversation
type), each with its value, multiplier and reason, and its severity signals, as JSON
written by `threadline.stories.priority`. Existing stories get `{}` until the next run.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005_story_priority"
down_revision = "0004_drop_vector_hnsw"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("stories", sa.Column("priority", JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")))


def downgrade() -> None:
    op.drop_column("stories", "priority")
