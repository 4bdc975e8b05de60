"""Migrations apply to an empty database and create every table of the brief."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

import threadline.db.models  # noqa: F401  (the models add the tables not in `threadline.db.tables`)
from threadline.db.embedded import ensure_database
from threadline.db.engine import make_engine
from threadline.db.migrate import current_revisions, upgrade
from threadline.db.tables import METADATA

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
    "knowledge_sources",
    "knowledge_syncs",
    "articles",
    "passages",
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
            # Nor on passages: it is built concurrently after the first sync that writes passages.
            passage_indexes = conn.execute(
                text("SELECT indexname FROM pg_indexes WHERE tablename = 'passages' AND indexdef ILIKE '%hnsw%'")
            ).all()
            assert passage_indexes == []
        upgrade(engine)  # a second upgrade is a no-op
    finally:
        engine.dispose()


# What the migrated database holds that the metadata does not describe, by design: procrastinate's own
# schema, and indexes on expressions that only the migrations define (full-text search, partial orders).
NOT_IN_METADATA = ("remove_table", "remove_index")


def test_the_tables_and_models_describe_the_migrated_schema(db_engine):
    """`threadline.db.tables` and the models' own tables: no table, column, type or index the migrations lack."""
    with db_engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, METADATA)
    described = [d for d in differences if isinstance(d, list) or d[0] not in NOT_IN_METADATA]
    assert described == []
