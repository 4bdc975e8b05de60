"""Migrations apply to an empty database and create every table of the brief."""

from sqlalchemy import inspect, text

from threadline.db.embedded import ensure_database
from threadline.db.engine import make_engine
from threadline.db.migrate import current_revisions, upgrade

BRIEF_TABLES = {
    "sources",
    "conversations",
    "messages",
    "contacts",
    "runs",
    "run_conversations",
    "analyses",
    "embeddings",
    "scopes",
    "themes",
    "run_themes",
    "theme_members",
    "stories",
    "run_stories",
    "run_story_evidence",
    "audit_events",
    "dead_letters",
    "api_tokens",
}


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
            assert conn.execute(text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")).scalar_one()
            # No ANN index on embeddings: maintaining it per insert cost more than a run's other work (0004).
            vector_indexes = conn.execute(
                text("SELECT indexname FROM pg_indexes WHERE tablename = 'embeddings' AND indexdef ILIKE '%hnsw%'")
            ).all()
            assert vector_indexes == []
        upgrade(engine)  # a second upgrade is a no-op
    finally:
        engine.dispose()
