"""coverage: a run's documentation snapshot (passages per theme, documentation gaps, confusing articles)

Revision ID: 0014_coverage
Revises: 0013_tracker_merge_comment
Create Date: 2026-12-12

Written once by the `coverage` stage of a run, never updated (runs are snapshots). Each row
copies what it shows (article title, URL, heading, the passage's content hash), so a later
sync that changes or removes an article never changes what an earlier run said; the ids
(passage, article) link to the current rows while they exist (SET NULL when deleted).

- `run_theme_passages`: per leaf theme, its best passages (rank 1 first) with their similarity.
- `run_doc_gaps`: themes mostly of questions that no passage covers, ranked by impact.
- `run_confusing_articles`: articles linked in conversations where the customer was still
  stuck afterwards, ranked by impact, with example conversations.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0014_coverage"
down_revision = "0013_tracker_merge_comment"
branch_labels = None
depends_on = None


def _run() -> sa.Column:
    return sa.Column("run_id", sa.BigInteger(), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)


def _article() -> sa.Column:
    return sa.Column("article_id", sa.BigInteger(), sa.ForeignKey("articles.id", ondelete="SET NULL"), nullable=True)


def upgrade() -> None:
    op.create_table(
        "run_theme_passages",
        _run(),
        sa.Column("theme_id", sa.BigInteger(), sa.ForeignKey("themes.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("rank", sa.Integer(), primary_key=True),
        sa.Column("passage_id", sa.BigInteger(), sa.ForeignKey("passages.id", ondelete="SET NULL"), nullable=True),
        _article(),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("article_title", sa.Text(), nullable=False),
        sa.Column("article_url", sa.Text(), nullable=True),
        sa.Column("heading", sa.Text(), nullable=True),
        sa.Column("similarity", sa.Float(), nullable=False),
    )
    op.create_index("ix_run_theme_passages_theme_id", "run_theme_passages", ["theme_id"])
    op.create_table(
        "run_doc_gaps",
        _run(),
        sa.Column("theme_id", sa.BigInteger(), sa.ForeignKey("themes.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("conversations", sa.Integer(), nullable=False),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.Column("question_share", sa.Float(), nullable=False),
        sa.Column("best_similarity", sa.Float(), nullable=True),
        sa.Column("example_conversation_ids", postgresql.ARRAY(sa.BigInteger()), nullable=False, server_default="{}"),
    )
    op.create_table(
        "run_confusing_articles",
        _run(),
        sa.Column("rank", sa.Integer(), primary_key=True),
        _article(),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("article_title", sa.Text(), nullable=False),
        sa.Column("article_url", sa.Text(), nullable=True),
        sa.Column("linked_conversations", sa.Integer(), nullable=False),
        sa.Column("stuck_conversations", sa.Integer(), nullable=False),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.Column("example_conversation_ids", postgresql.ARRAY(sa.BigInteger()), nullable=False, server_default="{}"),
    )


def downgrade() -> None:
    op.drop_table("run_confusing_articles")
    op.drop_table("run_doc_gaps")
    op.drop_index("ix_run_theme_passages_theme_id", table_name="run_theme_passages")
    op.drop_table("run_theme_passages")
