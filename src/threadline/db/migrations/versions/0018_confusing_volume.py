"""confusing articles by volume: articles after whose date a theme they cover did not fall

Revision ID: 0018_confusing_volume
Revises: 0017_knowledge_scope
Create Date: 2026-12-14

`run_confusing_articles` gets a `kind`: 'still_stuck' (the rows so far: linked, then the
customer still reported the problem) or 'volume_not_falling' (the article covers a theme whose
conversations per day did not fall after the article's date). The second kind has no link
counts (NULL) and keeps the theme, the article's date, the window and the counts and shares
of the theme before and after it.
"""

import sqlalchemy as sa
from alembic import op

revision = "0018_confusing_volume"
down_revision = "0017_knowledge_scope"
branch_labels = None
depends_on = None

TABLE = "run_confusing_articles"


def upgrade() -> None:
    op.add_column(TABLE, sa.Column("kind", sa.String(24), nullable=False, server_default="still_stuck"))
    op.create_check_constraint("ck_run_confusing_articles_kind", TABLE, "kind IN ('still_stuck', 'volume_not_falling')")
    op.alter_column(TABLE, "linked_conversations", nullable=True)
    op.alter_column(TABLE, "stuck_conversations", nullable=True)
    op.add_column(
        TABLE, sa.Column("theme_id", sa.BigInteger(), sa.ForeignKey("themes.id", ondelete="SET NULL"), nullable=True)
    )
    op.add_column(TABLE, sa.Column("article_updated_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(TABLE, sa.Column("window_days", sa.Integer(), nullable=True))
    op.add_column(TABLE, sa.Column("conversations_before", sa.Integer(), nullable=True))
    op.add_column(TABLE, sa.Column("conversations_after", sa.Integer(), nullable=True))
    op.add_column(TABLE, sa.Column("share_before", sa.Float(), nullable=True))
    op.add_column(TABLE, sa.Column("share_after", sa.Float(), nullable=True))


def downgrade() -> None:
    op.execute(f"DELETE FROM {TABLE} WHERE kind <> 'still_stuck'")
    for column in (
        "share_after",
        "share_before",
        "conversations_after",
        "conversations_before",
        "window_days",
        "article_updated_at",
        "theme_id",
    ):
        op.drop_column(TABLE, column)
    op.alter_column(TABLE, "stuck_conversations", nullable=False)
    op.alter_column(TABLE, "linked_conversations", nullable=False)
    op.drop_constraint("ck_run_confusing_articles_kind", TABLE, type_="check")
    op.drop_column(TABLE, "kind")
