"""notification channels and notifications: digests after each run to webhooks and Slack

Revision ID: 0009_notifications
Revises: 0008_source_syncs
Create Date: 2026-12-07

- `notification_channels`: a generic webhook or a Slack incoming webhook (name unique, kind,
  configuration as JSON naming the environment variables of the URL and signing secret).
- `notifications`: one digest for one channel and one event (`event_key`, e.g. `run:12`),
  UNIQUE (channel_id, event_key) so a re-run job never sends a digest twice; its payload is
  stored masked, so a retry (`dlq retry`) sends exactly what the first attempt tried to.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009_notifications"
down_revision = "0008_source_syncs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notification_channels",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("config", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    )
    op.create_table(
        "notifications",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column(
            "channel_id",
            sa.BigInteger(),
            sa.ForeignKey("notification_channels.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("run_id", sa.BigInteger(), sa.ForeignKey("runs.id", ondelete="SET NULL"), nullable=True),
        sa.Column("event_key", sa.String(200), nullable=False),
        sa.Column("payload", postgresql.JSONB(), nullable=False),
        sa.Column("status", sa.String(16), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="ck_notifications_status"),
        sa.UniqueConstraint("channel_id", "event_key", name="uq_notifications_channel_event"),
    )


def downgrade() -> None:
    op.drop_table("notifications")
    op.drop_table("notification_channels")
