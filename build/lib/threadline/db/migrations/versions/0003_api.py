"""indexes for the HTTP API: message full-text search, newest-first conversation lists

Revision ID: 0003_api
Revises: 0001
Create Date: 2026-11-22

- A GIN index on to_tsvector('english', messages.text): the expression that
  `threadline.read.conversations` searches (conversations are found through their
  messages, so the index lives on messages).
- A partial b-tree on live conversations in the API's list order (created_at DESC NULLS
  LAST, id DESC), so a page of the newest conversations is an index scan, not a sort of
  the whole table.
"""

from alembic import op

revision = "0003_api"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX IF NOT EXISTS ix_messages_text_fts ON messages USING gin (to_tsvector('english', text))")
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_conversations_live_newest ON conversations "
        "(created_at DESC NULLS LAST, id DESC) WHERE deleted_at IS NULL"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_conversations_live_newest")
    op.execute("DROP INDEX IF EXISTS ix_messages_text_fts")
