"""full-text search index for the HTTP API

Revision ID: 0003_api
Revises: 0001
Create Date: 2026-11-22

A GIN index on to_tsvector('english', messages.text): the expression that
`threadline.api.read.conversations` searches (conversations are found through their
messages, so the index lives on messages).
"""
from alembic import op

revision = "0003_api"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_messages_text_fts ON messages USING gin (to_tsvector('english', text))"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_messages_text_fts")
