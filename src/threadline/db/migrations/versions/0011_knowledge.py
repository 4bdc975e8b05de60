"""knowledge: sources of help-center articles and docs, their syncs, articles and passages with vectors

Revision ID: 0011_knowledge
Revises: 0010_schedules
Create Date: 2026-12-10

- `knowledge_sources`: a folder, a documentation site or a help center (name unique, kind,
  options as JSON naming environment variables, never secrets; the connector's sync state).
- `knowledge_syncs`: one row per sync, the job every article and passage points back to.
- `articles`: UNIQUE (knowledge source, external id), content hash of the current version,
  status active/removed, created/changed by which sync.
- `passages`: heading sections per article version (content hash), char offsets, and a
  vector(384) for cosine search. The HNSW index is *not* created here: it is built with
  `CREATE INDEX CONCURRENTLY` after a sync wrote passages (see 0004 for why row-by-row
  maintenance during bulk inserts is avoided).
Dead letters of knowledge syncs use the existing `dead_letters` table (stage `knowledge`).
"""

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects import postgresql

revision = "0011_knowledge"
down_revision = "0010_schedules"
branch_labels = None
depends_on = None

_NOW = sa.text("now()")
_EMPTY = sa.text("'{}'::jsonb")


def upgrade() -> None:
    op.create_table(
        "knowledge_sources",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("options", postgresql.JSONB(), nullable=False, server_default=_EMPTY),
        sa.Column("sync_state", postgresql.JSONB(), nullable=False, server_default=_EMPTY),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
    )
    op.create_table(
        "knowledge_syncs",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column(
            "knowledge_source_id",
            sa.BigInteger(),
            sa.ForeignKey("knowledge_sources.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("status", sa.String(16), nullable=False, server_default="running"),
        sa.Column("counters", postgresql.JSONB(), nullable=False, server_default=_EMPTY),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('running', 'succeeded', 'failed')", name="ck_knowledge_syncs_status"),
    )
    op.create_index("ix_knowledge_syncs_knowledge_source_id", "knowledge_syncs", ["knowledge_source_id"])
    op.create_table(
        "articles",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column(
            "knowledge_source_id",
            sa.BigInteger(),
            sa.ForeignKey("knowledge_sources.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("external_id", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="active"),
        sa.Column("source_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by_sync_id", sa.BigInteger(), sa.ForeignKey("knowledge_syncs.id", ondelete="SET NULL")),
        sa.Column("changed_by_sync_id", sa.BigInteger(), sa.ForeignKey("knowledge_syncs.id", ondelete="SET NULL")),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("knowledge_source_id", "external_id"),
        sa.CheckConstraint("status IN ('active', 'removed')", name="ck_articles_status"),
    )
    op.create_table(
        "passages",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("article_id", sa.BigInteger(), sa.ForeignKey("articles.id", ondelete="CASCADE"), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("heading_path", postgresql.ARRAY(sa.Text()), nullable=False, server_default="{}"),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("start_offset", sa.Integer(), nullable=False),
        sa.Column("end_offset", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("embedding", Vector(384), nullable=False),
        sa.Column("created_by_sync_id", sa.BigInteger(), sa.ForeignKey("knowledge_syncs.id", ondelete="SET NULL")),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.UniqueConstraint("article_id", "content_hash", "position"),
    )
    op.create_index("ix_passages_article_hash", "passages", ["article_id", "content_hash"])


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_passages_embedding_hnsw")
    op.drop_index("ix_passages_article_hash", table_name="passages")
    op.drop_table("passages")
    op.drop_table("articles")
    op.drop_index("ix_knowledge_syncs_knowledge_source_id", table_name="knowledge_syncs")
    op.drop_table("knowledge_syncs")
    op.drop_table("knowledge_sources")
