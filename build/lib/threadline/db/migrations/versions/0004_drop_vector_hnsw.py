"""drop the HNSW index on embeddings: maintained row by row it costs more than the run's other work

Revision ID: 0004_drop_vector_hnsw
Revises: 0003_api
Create Date: 2026-11-22

Nothing in Threadline searches nearest neighbours in SQL: discovery, theme joining and
conversation types work on vectors loaded into memory. Yet pgvector maintains an HNSW
index on every insert, measured at ~0.85 ms per vector (8.4-9.0 s per 10,000 vectors,
against 0.2 s to insert them without the index and 1.3 s to build the same index in
bulk; `benchmarks/vector_index_cost.py`). A feature that needs SQL similarity search
should add the index back with `CREATE INDEX CONCURRENTLY` (a bulk build).
"""

from alembic import op

revision = "0004_drop_vector_hnsw"
down_revision = "0003_api"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_embeddings_vector_hnsw")


def downgrade() -> None:
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_embeddings_vector_hnsw ON embeddings "
        "USING hnsw ((vector::vector(384)) vector_cosine_ops) WHERE dimensions = 384"
    )
