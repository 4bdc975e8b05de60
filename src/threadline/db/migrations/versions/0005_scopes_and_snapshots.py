"""scopes, theme lineages, per-run snapshots of themes and stories, audit events

Revision ID: 0005_snapshots
Revises: 0004_drop_vector_hnsw
Create Date: 2026-11-29

Before this revision themes and stories were single mutable rows: each run overwrote a
story's text, counts, rank and evidence, a theme's key phrases, size and group, and themes
were shared by runs of unrelated sources. From here on:

- `scopes`: the sorted set of source ids a run reads; `runs.scope_id`, and the run's
  period (its oldest and newest member conversation).
- `themes` are lineages: one scope, identity and human state only (a person's name,
  keep-separate, merged-into). `run_themes` holds what each run found (name, description,
  key phrases, size, group, first/last seen), written once.
- `stories` are identities (status, a person's edits); `run_stories` and
  `run_story_evidence` hold what each run wrote, evidence copied as quoted (quote,
  offsets, message position and role, SHA-256 of the message text).
- `audit_events`: who did what and when.

Existing data becomes snapshots:
- every run gets the scope it read (`params.source`, else the sources that existed when it
  was created, else the sources of its conversations), its period, and `snapshot = false`;
- a theme whose members came from runs of several scopes (the "bleeding" defect) is split:
  the scope of its first run keeps the row, each other scope gets a copy, and that scope's
  memberships, stories and group are re-pointed to the copy;
- each run keeps its membership; `run_themes` rows are rebuilt from it (size, first/last
  seen per run). A name is recorded where it was computed from the lineage's own scope
  (names were set once, when a theme was created); key phrases and the group only for the
  run that wrote them last. Everything else shows "not recorded for this run";
- each story becomes an identity plus the snapshot of the run that wrote it last; text a
  person had edited becomes their edit. Evidence gets the message's position, role and
  hash when the quote still matches the message, else no hash (shown as changed since).

Downgrade is refused: snapshots cannot be folded back into single rows without losing
history.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005_snapshots"
down_revision = "0004_drop_vector_hnsw"
branch_labels = None
depends_on = None


def _scopes() -> None:
    op.create_table(
        "scopes",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("key", sa.Text(), nullable=False, unique=True),
        sa.Column("source_ids", postgresql.ARRAY(sa.BigInteger()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    )
    op.add_column("runs", sa.Column("scope_id", sa.BigInteger(), nullable=True))
    op.add_column("runs", sa.Column("period_start", sa.DateTime(timezone=True), nullable=True))
    op.add_column("runs", sa.Column("period_end", sa.DateTime(timezone=True), nullable=True))
    op.add_column("runs", sa.Column("snapshot", sa.Boolean(), server_default=sa.text("true"), nullable=False))
    op.execute(
        """
        CREATE TEMP TABLE m5_run_scope ON COMMIT DROP AS
        SELECT r.id AS run_id,
               COALESCE(
                   (SELECT array_agg(s.id ORDER BY s.id) FROM sources s WHERE s.name = r.params->>'source'),
                   (SELECT array_agg(s.id ORDER BY s.id) FROM sources s
                     WHERE r.params->>'source' IS NULL AND s.created_at <= r.created_at),
                   (SELECT array_agg(DISTINCT c.source_id ORDER BY c.source_id)
                      FROM run_conversations rc JOIN conversations c ON c.id = rc.conversation_id
                     WHERE rc.run_id = r.id),
                   CAST('{}' AS bigint[])) AS source_ids
          FROM runs r
        """
    )
    op.execute(
        """
        INSERT INTO scopes (key, source_ids)
        SELECT array_to_string(source_ids, ','), source_ids FROM m5_run_scope
         GROUP BY source_ids ORDER BY min(run_id)
        """
    )
    op.execute(
        """
        UPDATE runs r SET scope_id = s.id, snapshot = false,
               period_start = p.first, period_end = p.last
          FROM m5_run_scope rs
          JOIN scopes s ON s.key = array_to_string(rs.source_ids, ',')
          LEFT JOIN (SELECT rc.run_id, min(c.created_at) AS first, max(c.created_at) AS last
                       FROM run_conversations rc JOIN conversations c ON c.id = rc.conversation_id
                      GROUP BY rc.run_id) p ON p.run_id = rs.run_id
         WHERE r.id = rs.run_id
        """
    )
    op.alter_column("runs", "scope_id", nullable=False)
    op.create_foreign_key("fk_runs_scope_id", "runs", "scopes", ["scope_id"], ["id"], ondelete="RESTRICT")
    op.create_index("ix_runs_scope_id", "runs", ["scope_id"])


def _split_themes_per_scope() -> None:
    """Lineages belong to one scope: copy a leaf theme for every other scope whose runs used it."""
    op.add_column("themes", sa.Column("scope_id", sa.BigInteger(), nullable=True))
    op.add_column("themes", sa.Column("human_name", sa.Text(), nullable=True))
    op.add_column("themes", sa.Column("keep_separate", sa.Boolean(), server_default=sa.text("false"), nullable=False))
    op.add_column("themes", sa.Column("merged_into_id", sa.BigInteger(), nullable=True))
    op.add_column("themes", sa.Column("merged_by", sa.String(16), nullable=True))
    op.add_column("themes", sa.Column("merged_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("themes", sa.Column("merged_run_id", sa.BigInteger(), nullable=True))
    # Leaf themes: the scopes of the runs that put members in them or wrote their story.
    op.execute(
        """
        CREATE TEMP TABLE m5_theme_scope ON COMMIT DROP AS
        SELECT DISTINCT u.theme_id, u.scope_id FROM (
            SELECT tm.theme_id, r.scope_id FROM theme_members tm JOIN runs r ON r.id = tm.run_id
            UNION ALL
            SELECT st.theme_id, r.scope_id FROM stories st JOIN runs r ON r.id = st.run_id) u
        """
    )
    # The home scope (which keeps the row) is the scope of the theme's first run, else the
    # smallest scope id among its scopes. `named`: the name was computed in this scope (names
    # were set once, by the run that created the theme). `wrote_last`: the run whose key
    # phrases, description and group the row holds (the theme's last run).
    op.execute(
        """
        CREATE TEMP TABLE m5_theme_split ON COMMIT DROP AS
        SELECT ts.theme_id AS old_id, ts.scope_id, t.last_run_id AS wrote_last,
               ts.scope_id = h.home AS home,
               COALESCE(ts.scope_id = fr.scope_id, false) AS named,
               CASE WHEN ts.scope_id = h.home THEN ts.theme_id
                    ELSE nextval(pg_get_serial_sequence('themes', 'id')) END AS new_id
          FROM m5_theme_scope ts
          JOIN themes t ON t.id = ts.theme_id
          LEFT JOIN runs fr ON fr.id = t.first_run_id
          CROSS JOIN LATERAL (
              SELECT CASE WHEN bool_or(x.scope_id = fr.scope_id) THEN fr.scope_id ELSE min(x.scope_id) END AS home
                FROM m5_theme_scope x WHERE x.theme_id = ts.theme_id) h
        """
    )
    op.execute(
        """
        INSERT INTO themes (id, level, name, keywords, size, first_run_id, last_run_id, created_at, updated_at,
                            scope_id)
        SELECT sp.new_id, 1, t.name, t.keywords, 0, t.first_run_id, t.last_run_id, t.created_at, t.updated_at,
               sp.scope_id
          FROM m5_theme_split sp JOIN themes t ON t.id = sp.old_id
         WHERE NOT sp.home
        """
    )
    op.execute("UPDATE themes t SET scope_id = sp.scope_id FROM m5_theme_split sp WHERE sp.home AND t.id = sp.old_id")
    op.execute(
        """
        UPDATE theme_members tm SET theme_id = sp.new_id
          FROM runs r, m5_theme_split sp
         WHERE r.id = tm.run_id AND sp.old_id = tm.theme_id AND sp.scope_id = r.scope_id AND NOT sp.home
        """
    )
    op.execute(
        """
        UPDATE stories st SET theme_id = sp.new_id
          FROM runs r, m5_theme_split sp
         WHERE r.id = st.run_id AND sp.old_id = st.theme_id AND sp.scope_id = r.scope_id AND NOT sp.home
        """
    )


def _theme_snapshots() -> None:
    op.create_table(
        "run_themes",
        sa.Column("run_id", sa.BigInteger(), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("theme_id", sa.BigInteger(), sa.ForeignKey("themes.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.BigInteger(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("keywords", postgresql.ARRAY(sa.Text()), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=True),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("representative_conversation_id", sa.BigInteger(), nullable=True),
    )
    op.create_index("ix_run_themes_theme_id", "run_themes", ["theme_id"])
    # Leaf themes: one row per (run, lineage) of the membership, with its size and dates in
    # that run. Name where it was computed in this scope; key phrases, description and group
    # only for the run that wrote them last; otherwise NULL ("not recorded for this run").
    op.execute(
        """
        INSERT INTO run_themes (run_id, theme_id, level, parent_id, name, description, keywords, size,
                                first_seen, last_seen, origin)
        SELECT m.run_id, m.theme_id, 1,
               CASE WHEN m.run_id = sp.wrote_last THEN o.parent_id END,
               CASE WHEN sp.named THEN o.name END,
               CASE WHEN sp.named AND m.run_id = sp.wrote_last THEN o.description END,
               CASE WHEN m.run_id = sp.wrote_last THEN o.keywords END,
               m.size, m.first_seen, m.last_seen, 'legacy'
          FROM (SELECT tm.run_id, tm.theme_id, count(*) AS size,
                       min(c.created_at) AS first_seen, max(c.created_at) AS last_seen
                  FROM theme_members tm JOIN conversations c ON c.id = tm.conversation_id
                 GROUP BY tm.run_id, tm.theme_id) m
          JOIN m5_theme_split sp ON sp.new_id = m.theme_id
          JOIN themes o ON o.id = sp.old_id
        """
    )
    # Groups follow their recorded children: one group lineage per (group, scope). The scope that
    # wrote the group last keeps the row and its name; other scopes get a copy without a name.
    op.execute(
        """
        CREATE TEMP TABLE m5_group_split ON COMMIT DROP AS
        SELECT g.parent_id AS old_id, g.scope_id,
               g.last_run = max(g.last_run) OVER (PARTITION BY g.parent_id) AS home,
               CASE WHEN g.last_run = max(g.last_run) OVER (PARTITION BY g.parent_id) THEN g.parent_id
                    ELSE nextval(pg_get_serial_sequence('themes', 'id')) END AS new_id
          FROM (SELECT rt.parent_id, r.scope_id, max(rt.run_id) AS last_run
                  FROM run_themes rt JOIN runs r ON r.id = rt.run_id
                 WHERE rt.parent_id IS NOT NULL GROUP BY rt.parent_id, r.scope_id) g
        """
    )
    op.execute(
        """
        INSERT INTO themes (id, level, name, keywords, size, created_at, updated_at, scope_id)
        SELECT gs.new_id, 0, t.name, t.keywords, 0, t.created_at, t.updated_at, gs.scope_id
          FROM m5_group_split gs JOIN themes t ON t.id = gs.old_id
         WHERE NOT gs.home
        """
    )
    op.execute("UPDATE themes t SET scope_id = gs.scope_id FROM m5_group_split gs WHERE gs.home AND t.id = gs.old_id")
    op.execute(
        """
        UPDATE run_themes rt SET parent_id = gs.new_id
          FROM runs r, m5_group_split gs
         WHERE r.id = rt.run_id AND rt.parent_id = gs.old_id AND gs.scope_id = r.scope_id AND NOT gs.home
        """
    )
    op.execute(
        """
        INSERT INTO run_themes (run_id, theme_id, level, parent_id, name, keywords, size, first_seen, last_seen,
                                origin)
        SELECT rt.run_id, rt.parent_id, 0, NULL, CASE WHEN gs.home THEN g.name END, g.keywords,
               sum(rt.size), min(rt.first_seen), max(rt.last_seen), 'legacy'
          FROM run_themes rt
          JOIN m5_group_split gs ON gs.new_id = rt.parent_id
          JOIN themes g ON g.id = gs.old_id
         GROUP BY rt.run_id, rt.parent_id, gs.home, g.name, g.keywords
        """
    )
    # Themes no run used carry no history; lineages span the runs that have their snapshots.
    op.execute("UPDATE themes SET parent_id = NULL")
    op.execute("DELETE FROM themes WHERE scope_id IS NULL")
    op.execute(
        """
        UPDATE themes t SET first_run_id = m.first, last_run_id = m.last
          FROM (SELECT theme_id, min(run_id) AS first, max(run_id) AS last FROM run_themes GROUP BY theme_id) m
         WHERE m.theme_id = t.id
        """
    )
    for column in (
        "parent_id",
        "name",
        "description",
        "keywords",
        "centroid",
        "embedding_model",
        "representative_message_id",
        "conversation_type",
        "size",
        "first_seen",
        "last_seen",
    ):
        op.drop_column("themes", column)
    op.alter_column("themes", "scope_id", nullable=False)
    op.create_foreign_key("fk_themes_scope_id", "themes", "scopes", ["scope_id"], ["id"], ondelete="CASCADE")
    op.create_foreign_key(
        "fk_themes_merged_into_id", "themes", "themes", ["merged_into_id"], ["id"], ondelete="SET NULL"
    )
    op.create_foreign_key("fk_themes_merged_run_id", "themes", "runs", ["merged_run_id"], ["id"], ondelete="SET NULL")
    op.create_index("ix_themes_scope_id", "themes", ["scope_id"])


def _story_snapshots() -> None:
    op.create_table(
        "run_stories",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("run_id", sa.BigInteger(), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("story_id", sa.BigInteger(), sa.ForeignKey("stories.id", ondelete="CASCADE"), nullable=False),
        sa.Column("theme_id", sa.BigInteger(), sa.ForeignKey("themes.id", ondelete="CASCADE"), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("problem", sa.Text(), nullable=False),
        sa.Column("user_story", sa.Text(), nullable=True),
        sa.Column("acceptance_criteria", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("severity", sa.String(16), nullable=True),
        sa.Column("severity_reason", sa.Text(), nullable=True),
        sa.Column("conversation_count", sa.Integer(), nullable=False),
        sa.Column("customer_count", sa.Integer(), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=True),
        sa.Column("trend", postgresql.JSONB(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("text_key", sa.String(64), nullable=True),
        sa.Column("text_origin", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.UniqueConstraint("run_id", "story_id"),
    )
    op.create_index("ix_run_stories_story_id", "run_stories", ["story_id"])
    op.create_table(
        "run_story_evidence",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("run_story_id", sa.BigInteger(), sa.ForeignKey("run_stories.id", ondelete="CASCADE"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column(
            "conversation_id", sa.BigInteger(), sa.ForeignKey("conversations.id", ondelete="SET NULL"), nullable=True
        ),
        sa.Column("conversation_external_id", sa.String(255), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("message_position", sa.Integer(), nullable=False),
        sa.Column("message_external_id", sa.String(255), nullable=True),
        sa.Column("author_role", sa.String(16), nullable=False),
        sa.Column("message_sha256", sa.String(64), nullable=True),
        sa.Column("quote", sa.Text(), nullable=False),
        sa.Column("start_offset", sa.Integer(), nullable=False),
        sa.Column("end_offset", sa.Integer(), nullable=False),
        sa.UniqueConstraint("run_story_id", "position"),
    )
    op.create_index("ix_run_story_evidence_conversation_id", "run_story_evidence", ["conversation_id"])
    op.add_column("stories", sa.Column("human_title", sa.Text(), nullable=True))
    op.add_column("stories", sa.Column("human_problem", sa.Text(), nullable=True))
    op.add_column("stories", sa.Column("human_user_story", sa.Text(), nullable=True))
    op.execute(
        "UPDATE stories SET human_title = title, human_problem = problem, human_user_story = user_story WHERE edited"
    )
    op.execute(
        """
        INSERT INTO run_stories (run_id, story_id, theme_id, title, problem, user_story, acceptance_criteria,
                                 severity, severity_reason, conversation_count, customer_count, first_seen,
                                 last_seen, trend, rank, score, text_origin, created_at)
        SELECT st.run_id, st.id, st.theme_id, st.title, st.problem, st.user_story, st.acceptance_criteria,
               st.severity, st.severity_reason, st.conversation_count, st.customer_count, st.first_seen,
               st.last_seen, st.trend, st.rank, st.score, 'legacy', st.updated_at
          FROM stories st WHERE st.run_id IS NOT NULL
        """
    )
    op.execute(
        """
        INSERT INTO run_story_evidence (run_story_id, position, conversation_id, conversation_external_id,
                                        message_id, message_position, message_external_id, author_role,
                                        message_sha256, quote, start_offset, end_offset)
        SELECT rs.id, e.position, e.conversation_id, c.external_id, e.message_id, m.position, m.external_id,
               m.author_role,
               CASE WHEN substr(m.text, e.start_offset + 1, e.end_offset - e.start_offset) = e.quote
                    THEN encode(sha256(convert_to(m.text, 'UTF8')), 'hex') END,
               e.quote, e.start_offset, e.end_offset
          FROM story_evidence e
          JOIN stories st ON st.id = e.story_id
          JOIN run_stories rs ON rs.story_id = st.id AND rs.run_id = st.run_id
          JOIN conversations c ON c.id = e.conversation_id
          JOIN messages m ON m.id = e.message_id
        """
    )
    op.drop_table("story_evidence")
    for column in (
        "run_id",
        "title",
        "problem",
        "user_story",
        "acceptance_criteria",
        "severity",
        "severity_reason",
        "edited",
        "conversation_count",
        "customer_count",
        "first_seen",
        "last_seen",
        "trend",
        "rank",
        "score",
    ):
        op.drop_column("stories", column)


def _audit() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("subject_type", sa.String(32), nullable=False),
        sa.Column("subject_id", sa.BigInteger(), nullable=True),
        sa.Column("details", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
    )
    op.create_index("ix_audit_events_subject", "audit_events", ["subject_type", "subject_id"])


def upgrade() -> None:
    _scopes()
    _split_themes_per_scope()
    _theme_snapshots()
    _story_snapshots()
    _audit()


def downgrade() -> None:
    raise NotImplementedError("0005 cannot be downgraded: per-run snapshots do not fold back into single rows")
