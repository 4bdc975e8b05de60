"""tracker links remember the merge comment: a merged-away story's item points once to the surviving story's item

Revision ID: 0013_tracker_merge_comment
Revises: 0012_sessions_budget
Create Date: 2026-12-08

- `tracker_links.merge_commented_key`: the surviving story's item key that Threadline's
  comment on this (merged-away) story's item points to; set once the comment is posted, so
  later exports and pulls do not repeat it.
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_tracker_merge_comment"
down_revision = "0012_sessions_budget"
branch_labels = None
depends_on = None

TRACKER_KEY_CHARS = 255  # as in the models: characters of a tracker's item key


def upgrade() -> None:
    op.add_column("tracker_links", sa.Column("merge_commented_key", sa.String(TRACKER_KEY_CHARS), nullable=True))


def downgrade() -> None:
    op.drop_column("tracker_links", "merge_commented_key")
