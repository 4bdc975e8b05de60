"""theme entities: the top entities of each theme's conversations in a run's snapshot

Revision ID: 0015_theme_entities
Revises: 0014_coverage
Create Date: 2026-12-13

`run_themes.entities` is a JSON list of {"type", "value", "share"} (most shared first),
written by the `coverage` stage from the per-conversation entities it caches in `analyses`
(kind 'entities'). NULL: the run predates entities (or did not reach that stage).
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0015_theme_entities"
down_revision = "0014_coverage"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("run_themes", sa.Column("entities", postgresql.JSONB(), nullable=True))


def downgrade() -> None:
    op.drop_column("run_themes", "entities")
