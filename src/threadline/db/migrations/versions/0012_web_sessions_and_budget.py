"""server-side dashboard sessions (logout ends a session everywhere); a run's LLM spend and reservations

Revision ID: 0012_sessions_budget
Revises: 0011_knowledge
Create Date: 2026-12-06

- `web_sessions`: one row per dashboard sign-in, keyed by the SHA-256 of a random session
  id carried in the signed cookie. Signing out sets `ended_at`, so a copied cookie stops
  working at once instead of staying valid until it expires.
- `runs.llm_spent` and `runs.llm_reserved` (price-table currency): every LLM call reserves its
  largest possible cost before it is sent (`UPDATE ... WHERE llm_spent + llm_reserved + x <=
  budget`) and settles it with the actual cost after, so concurrent workers cannot together
  overrun the run's budget by more than one call's estimate.
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_sessions_budget"
down_revision = "0011_knowledge"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "web_sessions",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("sid_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("token_id", sa.BigInteger, sa.ForeignKey("api_tokens.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_web_sessions_expires_at", "web_sessions", ["expires_at"])
    op.add_column("runs", sa.Column("llm_spent", sa.Float, nullable=False, server_default="0"))
    op.add_column("runs", sa.Column("llm_reserved", sa.Float, nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_column("runs", "llm_reserved")
    op.drop_column("runs", "llm_spent")
    op.drop_table("web_sessions")
