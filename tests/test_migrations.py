"""Migrations apply to an empty database and create every table of the brief."""

from sqlalchemy import inspect, text

from threadline.db.embedded import ensure_database
from threadline.db.engine import make_engine
from threadline.db.migrate import current_revisions, upgrade

BRIEF_TABLES = {
    "sources", "conversations", "messages", "contacts", "runs", "run_conversations", "analyses",
    "embeddings", "themes", "theme_members", "stories", "story_evidence", "dead_letters", "api_tokens",
}  # fmt: skip


def test_upgrade_from_empty_database(pg_server):
    from sqlalchemy.engine import make_url

    ensure_database(pg_server, "empty_for_migrations")
    url = make_url(pg_server).set(drivername="postgresql+psycopg", database="empty_for_migrations")
    engine = make_engine(url.render_as_string(hide_password=False))
    try:
        assert current_revisions(engine) == set()
        upgrade(engine)
        assert current_revisions(engine)
        assert BRIEF_TABLES <= set(inspect(engine).get_table_names())
        with engine.connect() as conn:
            index = conn.execute(
                text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_embeddings_vector_hnsw'")
            ).scalar_one()
            assert "hnsw" in index and "vector_cosine_ops" in index
        upgrade(engine)  # a second upgrade is a no-op
    finally:
        engine.dispose()
