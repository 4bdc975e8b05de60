"""trackers and tracker links: one tracker item per story identity and tracker

Revision ID: 0006_trackers
Revises: 0005_snapshots
Create Date: 2026-12-06

- `trackers`: a configured GitHub repository, Jira project or Linear team (name unique,
  kind, configuration as JSON naming environment variables, never secrets).
- `tracker_links`: the item of a story identity in a tracker, UNIQUE (story_id, tracker_id)
  so however many processes export a story at once there is one row, reserved before the
  tracker is called; the item's key and URL, what was last pushed (run, snapshot, count,
  hash of Threadline's block), the item's state as last read (closed, since when) and a
  regression flag ("recurring after close").
- story status `done`: set when the story's tracker item is closed (`trackers pull`).
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007_trackers"
down_revision = "0006_story_priority"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "trackers",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("config", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    )
    op.create_table(
        "tracker_links",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("story_id", sa.BigInteger(), sa.ForeignKey("stories.id", ondelete="CASCADE"), nullable=False),
        sa.Column("tracker_id", sa.BigInteger(), sa.ForeignKey("trackers.id", ondelete="CASCADE"), nullable=False),
        sa.Column("item_key", sa.String(255), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("create_attempted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pushed_run_id", sa.BigInteger(), sa.ForeignKey("runs.id", ondelete="SET NULL"), nullable=True),
        sa.Column(
            "pushed_snapshot_id", sa.BigInteger(), sa.ForeignKey("run_stories.id", ondelete="SET NULL"), nullable=True
        ),
        sa.Column("pushed_conversations", sa.Integer(), nullable=True),
        sa.Column("block_sha256", sa.String(64), nullable=True),
        sa.Column("edited_by_person", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("closed", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("state_checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("regression_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("regression_conversations", sa.Integer(), nullable=True),
        sa.Column("regression_commented", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.UniqueConstraint("story_id", "tracker_id", name="uq_tracker_links_story_tracker"),
    )
    op.create_index("ix_tracker_links_tracker_id", "tracker_links", ["tracker_id"])
    op.drop_constraint("ck_stories_status", "stories", type_="check")
    op.create_check_constraint(
        "ck_stories_status", "stories", "status IN ('candidate', 'accepted', 'rejected', 'exported', 'done')"
    )


def downgrade() -> None:
    op.execute("UPDATE stories SET status = 'exported' WHERE status = 'done'")
    op.drop_constraint("ck_stories_status", "stories", type_="check")
    op.create_check_constraint(
        "ck_stories_status", "stories", "status IN ('candidate', 'accepted', 'rejected', 'exported')"
    )
    op.drop_index("ix_tracker_links_tracker_id", table_name="tracker_links")
    op.drop_table("tracker_links")
    op.drop_table("trackers")
