"""Migration 0005 from the previous head (0004) with data inserted by raw SQL, not through the models.

The data reproduces the defects the migration repairs: a theme whose members came from
runs of two unrelated sources (demo and star) and whose story was last written by the star
run, a story a person edited, and an evidence quote whose message changed after it was quoted.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from support import cloned_database

from threadline.db.engine import make_engine
from threadline.db.migrate import current_revisions, head_revisions, upgrade

PREVIOUS_HEAD = "0004_drop_vector_hnsw"

LEGACY_DATA = """
INSERT INTO sources (id, kind, name, config, sync_state, created_at) VALUES
  (1, 'file', 'demo', '{}', '{}', '2026-01-01T00:00:00Z'),
  (2, 'file', 'star', '{}', '{}', '2026-02-01T00:00:00Z');
INSERT INTO conversations (id, source_id, external_id, created_at, tags, content_hash, raw, notes) VALUES
  (11, 1, 'd1', '2026-01-10T10:00:00Z', '{}', 'h', '{}', '{}'),
  (12, 1, 'd2', '2026-01-11T10:00:00Z', '{}', 'h', '{}', '{}'),
  (13, 1, 'd3', '2026-01-12T10:00:00Z', '{}', 'h', '{}', '{}'),
  (14, 1, 'd4', '2026-01-13T10:00:00Z', '{}', 'h', '{}', '{}'),
  (15, 1, 'd5', '2026-01-14T10:00:00Z', '{}', 'h', '{}', '{}'),
  (21, 2, 's1', '2020-05-01T10:00:00Z', '{}', 'h', '{}', '{}'),
  (22, 2, 's2', '2020-05-02T10:00:00Z', '{}', 'h', '{}', '{}'),
  (23, 2, 's3', '2020-05-03T10:00:00Z', '{}', 'h', '{}', '{}');
INSERT INTO messages (id, conversation_id, position, author_role, raw_text, text, truncated) VALUES
  (111, 11, 0, 'customer', 'I cannot reset my email address.', 'I cannot reset my email address.', false),
  (112, 12, 0, 'customer', 'The email reset link is broken.', 'The email reset link is broken.', false),
  (113, 13, 0, 'customer', 'Reset email never arrives.', 'Reset email never arrives.', false),
  (114, 14, 0, 'customer', 'Export to CSV is missing columns.', 'Export to CSV is missing columns.', false),
  (115, 15, 0, 'customer', 'Now the text was edited later.', 'Now the text was edited later.', false),
  (121, 21, 0, 'customer', 'Someone transferred $500 from my account!', 'Someone transferred $500 from my account!', false),
  (122, 22, 0, 'customer', 'I see a payment I never made.', 'I see a payment I never made.', false),
  (123, 23, 0, 'customer', 'Fraud on my card.', 'Fraud on my card.', false);
INSERT INTO runs (id, status, params, counters, created_at, generation) VALUES
  (1, 'succeeded', '{"source": "demo"}', '{}', '2026-01-20T00:00:00Z', 0),
  (2, 'succeeded', '{"source": "star"}', '{}', '2026-02-20T00:00:00Z', 0),
  (3, 'failed', '{"source": null}', '{}', '2026-03-01T00:00:00Z', 0),
  (4, 'succeeded', '{"source": "demo"}', '{}', '2026-03-02T00:00:00Z', 0);
INSERT INTO run_conversations (run_id, conversation_id) VALUES
  (1, 11), (1, 12), (1, 13), (1, 14), (1, 15),
  (2, 21), (2, 22), (2, 23),
  (3, 11), (3, 21),
  (4, 11), (4, 12), (4, 13), (4, 14), (4, 15);
INSERT INTO themes (id, parent_id, level, name, description, keywords, size, first_seen, last_seen,
                    first_run_id, last_run_id) VALUES
  (100, NULL, 0, 'Account', NULL, '{account}', 8, NULL, NULL, NULL, NULL),
  (101, 100, 1, 'Reset email', 'Customers write about reset email.', '{reset email,transferred}', 6,
   '2020-05-01T10:00:00Z', '2026-01-12T10:00:00Z', 1, 2),
  (102, 100, 1, 'Export csv', 'Customers write about export.', '{export,csv}', 2,
   '2026-01-13T10:00:00Z', '2026-01-14T10:00:00Z', 1, 4),
  (103, NULL, 1, 'Never used', NULL, '{}', 0, NULL, NULL, NULL, NULL);
INSERT INTO theme_members (run_id, conversation_id, theme_id, similarity) VALUES
  (1, 11, 101, 0.9), (1, 12, 101, 0.8), (1, 13, 101, 0.7), (1, 14, 102, 0.9), (1, 15, 102, 0.8),
  (2, 21, 101, 0.6), (2, 22, 101, 0.5), (2, 23, 101, 0.5),
  (4, 14, 102, 0.9), (4, 15, 102, 0.8);
INSERT INTO stories (id, theme_id, run_id, title, problem, user_story, acceptance_criteria, severity,
                     severity_reason, status, edited, conversation_count, customer_count, trend, rank, score) VALUES
  (201, 101, 2, 'Fix: Reset email', 'Typical report: "Someone transferred $500 from my account!"', NULL,
   '{}', 'high', 'share', 'candidate', false, 3, 3, '{"direction": "new"}', 1, 3.0),
  (202, 102, 4, 'Human title', 'Human problem', 'As a customer...', '{criterion}', 'low', 'share',
   'accepted', true, 2, 2, '{"direction": "steady"}', 2, 1.0);
INSERT INTO story_evidence (story_id, position, conversation_id, message_id, quote, start_offset, end_offset) VALUES
  (201, 0, 21, 121, 'Someone transferred $500 from my account!', 0, 41),
  (202, 0, 14, 114, 'Export to CSV is missing columns.', 0, 33),
  (202, 1, 15, 115, 'The original sentence was here.', 0, 31);
"""


@pytest.fixture()
def legacy_engine(pg_server: str) -> Iterator[Engine]:
    """A database at the previous head holding the legacy data above (inserted with plain SQL)."""
    from threadline.db.embedded import ensure_database

    ensure_database(pg_server, "legacy_template_0004")
    with cloned_database(pg_server, "legacy_template_0004", prefix="legacy") as url:
        engine = make_engine(url)
        try:
            upgrade(engine, PREVIOUS_HEAD)
            assert current_revisions(engine) == {PREVIOUS_HEAD}
            with engine.begin() as conn:
                conn.exec_driver_sql(LEGACY_DATA)
                for table in ("sources", "conversations", "messages", "runs", "themes", "stories"):
                    conn.exec_driver_sql(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
                    )
            yield engine
        finally:
            engine.dispose()


def rows(engine: Engine, sql: str, **params) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(sql), params)]


def test_legacy_themes_and_stories_become_snapshots_split_per_scope(legacy_engine):
    upgrade(legacy_engine)
    # Runs get the scope they read, their period and the legacy mark.
    scopes = dict(rows(legacy_engine, "SELECT key, id FROM scopes"))
    assert set(scopes) == {"1", "2", "1,2"}
    runs = {
        r[0]: r[1:]
        for r in rows(
            legacy_engine,
            "SELECT r.id, s.key, r.snapshot, r.period_start::date::text FROM runs r JOIN scopes s ON s.id = r.scope_id",
        )
    }
    assert runs == {
        1: ("1", False, "2026-01-10"),
        2: ("2", False, "2020-05-01"),
        3: ("1,2", False, "2020-05-01"),
        4: ("1", False, "2026-01-10"),
    }

    # The bled theme is split: demo keeps the row, star gets its own lineage with its members.
    demo_lineage = rows(
        legacy_engine, "SELECT DISTINCT theme_id FROM theme_members WHERE run_id = 1 AND conversation_id = 11"
    )
    star_lineage = rows(legacy_engine, "SELECT DISTINCT theme_id FROM theme_members WHERE run_id = 2")
    assert demo_lineage == [(101,)] and len(star_lineage) == 1 and star_lineage[0][0] != 101
    star_theme = star_lineage[0][0]
    scope_of = dict(rows(legacy_engine, "SELECT id, scope_id FROM themes"))
    assert scope_of[101] == scopes["1"] and scope_of[star_theme] == scopes["2"]
    assert 103 not in scope_of  # a theme no run used carries no history
    # No theme of a demo run holds a star conversation, and the other way round.
    mixed = rows(
        legacy_engine,
        """SELECT count(*) FROM theme_members tm JOIN runs r ON r.id = tm.run_id JOIN themes t ON t.id = tm.theme_id
            WHERE t.scope_id <> r.scope_id""",
    )
    assert mixed == [(0,)]

    # Snapshots: sizes per run from the membership; the name where it was computed; key
    # phrases and group only for the run that wrote them; "not recorded" (NULL) elsewhere.
    snapshot = {
        (r[0], r[1]): r[2:]
        for r in rows(legacy_engine, "SELECT run_id, theme_id, name, keywords, size, parent_id, level FROM run_themes")
    }
    assert snapshot[(1, 101)] == ("Reset email", None, 3, None, 1)
    assert snapshot[(2, star_theme)][0] is None  # named from demo conversations: not this lineage's name
    assert snapshot[(2, star_theme)][1:4] == (["reset email", "transferred"], 3, snapshot[(2, star_theme)][3])
    assert snapshot[(4, 102)][:3] == ("Export csv", ["export", "csv"], 2)
    assert snapshot[(1, 102)] == ("Export csv", None, 2, None, 1)
    demo_group, star_group = snapshot[(4, 102)][3], snapshot[(2, star_theme)][3]
    assert demo_group == 100 and star_group not in (None, 100)
    assert snapshot[(4, 100)][0] == "Account" and snapshot[(4, 100)][2] == 2
    assert snapshot[(2, star_group)][0] is None and snapshot[(2, star_group)][2] == 3
    dates = rows(
        legacy_engine,
        "SELECT first_seen::date::text, last_seen::date::text FROM run_themes WHERE run_id = 2 AND level = 1",
    )
    assert dates == [("2020-05-01", "2020-05-03")]  # never the union of two scopes' dates

    # Stories: identity + the snapshot of the run that wrote them; edits become the person's.
    identities = {r[0]: r[1:] for r in rows(legacy_engine, "SELECT id, theme_id, status, human_title FROM stories")}
    assert identities == {201: (star_theme, "candidate", None), 202: (102, "accepted", "Human title")}
    stories = rows(
        legacy_engine, "SELECT story_id, run_id, theme_id, title, rank, text_origin FROM run_stories ORDER BY story_id"
    )
    assert stories == [(201, 2, star_theme, "Fix: Reset email", 1, "legacy"), (202, 4, 102, "Human title", 2, "legacy")]
    evidence = rows(
        legacy_engine,
        """SELECT rs.story_id, e.position, e.conversation_external_id, e.message_position, e.author_role,
                  e.message_sha256 IS NOT NULL, e.quote
             FROM run_story_evidence e JOIN run_stories rs ON rs.id = e.run_story_id ORDER BY 1, 2""",
    )
    assert evidence == [
        (201, 0, "s1", 0, "customer", True, "Someone transferred $500 from my account!"),
        (202, 0, "d4", 0, "customer", True, "Export to CSV is missing columns."),
        (202, 1, "d5", 0, "customer", False, "The original sentence was here."),  # changed since: no hash
    ]
    tables = {r[0] for r in rows(legacy_engine, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert (
        "story_evidence" not in tables and {"run_themes", "run_stories", "run_story_evidence", "audit_events"} <= tables
    )
    assert current_revisions(legacy_engine) == head_revisions()  # 0005 then every later revision
