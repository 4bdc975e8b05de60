"""Core tables the read commands query, defined once here and mapped by the ORM models.

`threadline status`, `runs list`, `themes`, `stories` and the read model (runs, views, themes,
stories) query these tables with SQLAlchemy Core and never import the ORM (`threadline.db.models`): building 34 declarative
classes and configuring their mappers costs a read command about 0.1-0.2 s, more than its
queries. `threadline.db.models` maps its classes onto these `Table` objects (`__table__`), so
each of these tables still has exactly one definition, and `METADATA` is the models' metadata
(Alembic's target). A table moves here when a read command needs it without the ORM.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

SOURCE_NAME_CHARS = 200  # characters of `sources.name`: a name a person types, not content
STATE_CHARS = 32  # characters of `conversations.state`: a source's status word (open, closed, snoozed, ...)

RUN_STATUSES = ("queued", "running", "stopping", "stopped", "succeeded", "failed")
AUTHOR_ROLES = ("customer", "agent", "bot", "note")
RUN_PHASE_STATES = ("pending", "active", "done")

METADATA = MetaData()


def in_values(column: str, values: tuple[str, ...]) -> str:
    """A CHECK constraint's SQL: `column` is one of `values`."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def created_now(name: str) -> Column[object]:
    """A timestamp column the database sets when the row is inserted."""
    return Column(name, DateTime(timezone=True), server_default=func.now(), nullable=False)


def _timestamp(name: str) -> Column[object]:
    return Column(name, DateTime(timezone=True), nullable=True)


SOURCES = Table(
    "sources",
    METADATA,
    Column("id", BigInteger, primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("name", String(SOURCE_NAME_CHARS), unique=True, nullable=False),
    Column("config", JSONB, default=dict, nullable=False),
    Column("sync_state", JSONB, default=dict, nullable=False),
    created_now("created_at"),
)

CONVERSATIONS = Table(
    "conversations",
    METADATA,
    Column("id", BigInteger, primary_key=True),
    Column("source_id", ForeignKey("sources.id", ondelete="CASCADE"), nullable=False),
    Column("external_id", String(255), nullable=False),
    _timestamp("created_at"),
    _timestamp("updated_at"),
    Column("state", String(STATE_CHARS), nullable=True),
    Column("url", Text, nullable=True),
    Column("subject", Text, nullable=True),
    Column("tags", ARRAY(Text), default=list, nullable=False),
    Column("assignee", Text, nullable=True),
    Column("contact_id", ForeignKey("contacts.id", ondelete="SET NULL"), nullable=True),
    Column("content_hash", String(64), nullable=False),
    Column("raw", JSONB, default=dict, nullable=False),
    Column("notes", ARRAY(Text), default=list, nullable=False),
    _timestamp("deleted_at"),
    created_now("imported_at"),
    created_now("changed_at"),
    # 0008: the sync (or import) that inserted the row and the last one that changed it; NULL: not recorded
    Column("created_by_sync_id", ForeignKey("source_syncs.id", ondelete="SET NULL"), index=True, nullable=True),
    Column("changed_by_sync_id", ForeignKey("source_syncs.id", ondelete="SET NULL"), index=True, nullable=True),
    UniqueConstraint("source_id", "external_id"),
    Index("ix_conversations_created_at", "created_at"),
)

MESSAGES = Table(
    "messages",
    METADATA,
    Column("id", BigInteger, primary_key=True),
    Column("conversation_id", ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("external_id", String(255), nullable=True),
    Column("author_role", String(16), nullable=False),
    Column("author_id", Text, nullable=True),
    Column("raw_text", Text, nullable=False),
    Column("text", Text, nullable=False),
    _timestamp("created_at"),
    Column("truncated", Boolean, default=False, nullable=False),
    UniqueConstraint("conversation_id", "position"),
    CheckConstraint(in_values("author_role", AUTHOR_ROLES), name="ck_messages_author_role"),
)

RUNS = Table(
    "runs",
    METADATA,
    Column("id", BigInteger, primary_key=True),
    Column("status", String(16), default="queued", nullable=False),
    Column("phase", String(32), nullable=True),
    Column("params", JSONB, default=dict, nullable=False),
    Column("counters", JSONB, default=dict, nullable=False),
    Column("error", Text, nullable=True),
    # LLM spend of the run (migration 0008): settled cost, and cost reserved by calls in flight.
    Column("llm_spent", Float, server_default="0", default=0.0, nullable=False),
    Column("llm_reserved", Float, server_default="0", default=0.0, nullable=False),
    created_now("created_at"),
    _timestamp("started_at"),
    _timestamp("finished_at"),
    _timestamp("stop_requested_at"),
    Column("generation", Integer, default=0, server_default="0", nullable=False),  # 0002: bumped by resume
    Column("scope_id", ForeignKey("scopes.id", ondelete="RESTRICT"), index=True, nullable=False),  # 0005
    _timestamp("period_start"),  # oldest member conversation
    _timestamp("period_end"),  # newest member conversation
    Column("snapshot", Boolean, default=True, server_default="true", nullable=False),  # False: predates 0005
    CheckConstraint(in_values("status", RUN_STATUSES), name="ck_runs_status"),
)

# The concrete, sorted set of sources a run reads (migration 0005); `key` is the sorted ids joined by commas.
SCOPES = Table(
    "scopes",
    METADATA,
    Column("id", BigInteger, primary_key=True),
    Column("key", Text, unique=True, nullable=False),
    Column("source_ids", ARRAY(BigInteger), nullable=False),
    created_now("created_at"),
)

RUN_PHASES = Table(
    "run_phases",
    METADATA,
    Column("run_id", ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("phase", String(32), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("state", String(16), default="pending", server_default="pending", nullable=False),
    _timestamp("started_at"),
    _timestamp("finished_at"),
    CheckConstraint(in_values("state", RUN_PHASE_STATES), name="ck_run_phases_state"),
)

DEAD_LETTERS = Table(
    "dead_letters",
    METADATA,
    Column("id", BigInteger, primary_key=True),
    Column("run_id", ForeignKey("runs.id", ondelete="CASCADE"), index=True, nullable=True),
    Column("stage", String(32), nullable=False),
    Column("item", Text, nullable=False),
    Column("error_class", String(200), nullable=False),
    Column("error_message", Text, nullable=False),
    Column("attempts", Integer, default=1, nullable=False),
    created_now("failed_at"),
    _timestamp("retried_at"),
    # One open (not yet retried) dead letter per item, so a failure is recorded once.
    Index(
        "ux_dead_letters_open_item", "run_id", "stage", "item", unique=True, postgresql_where=text("retried_at IS NULL")
    ),
)

# --- themes and stories: what `threadline themes` and `threadline stories` read --------------------------------

STORY_STATUSES = ("candidate", "accepted", "rejected", "exported", "done")  # done: its tracker item was closed
TRACKER_NAME_CHARS = 200  # characters of `trackers.name`: a name a person types
TRACKER_KEY_CHARS = 255  # characters of a tracker's item key: GitHub numbers, Jira keys (ENG-12), Linear UUIDs

RUN_CONVERSATIONS = Table(
    "run_conversations",
    METADATA,
    Column("run_id", ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("conversation_id", ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True, index=True),
    created_now("added_at"),
)

THEMES = Table(
    "themes",
    METADATA,
    Column("id", BigInteger, primary_key=True),
    Column("scope_id", ForeignKey("scopes.id", ondelete="CASCADE"), nullable=False),
    Column("level", Integer, default=1, nullable=False),
    Column("first_run_id", ForeignKey("runs.id", ondelete="SET NULL"), nullable=True),
    Column("last_run_id", ForeignKey("runs.id", ondelete="SET NULL"), nullable=True),
    Column("human_name", Text, nullable=True),
    Column("keep_separate", Boolean, default=False, server_default="false", nullable=False),
    Column("merged_into_id", ForeignKey("themes.id", ondelete="SET NULL"), nullable=True),
    Column("merged_by", String(16), nullable=True),  # "person" or "run"
    _timestamp("merged_at"),
    Column("merged_run_id", ForeignKey("runs.id", ondelete="SET NULL"), nullable=True),  # the run that merged it
    created_now("created_at"),
    created_now("updated_at"),
    Index("ix_themes_scope_id", "scope_id"),
)

RUN_THEMES = Table(
    "run_themes",
    METADATA,
    Column("run_id", ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("theme_id", ForeignKey("themes.id", ondelete="CASCADE"), primary_key=True),
    Column("level", Integer, default=1, nullable=False),
    Column("parent_id", BigInteger, nullable=True),  # the group's lineage in this run
    Column("name", Text, nullable=True),
    Column("description", Text, nullable=True),
    Column("keywords", ARRAY(Text), nullable=True),
    Column("size", Integer, default=0, nullable=False),
    _timestamp("first_seen"),
    _timestamp("last_seen"),
    Column("origin", String(16), default="new", nullable=False),  # new | continued | revived | legacy
    Column("representative_conversation_id", BigInteger, nullable=True),
    # Top entities of the theme's conversations, [{"type", "value", "share"}] most shared first (coverage stage).
    Column("entities", JSONB, nullable=True),
    Index("ix_run_themes_theme_id", "theme_id"),
)

THEME_MEMBERS = Table(
    "theme_members",
    METADATA,
    Column("run_id", ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("conversation_id", ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True),
    Column("theme_id", ForeignKey("themes.id", ondelete="CASCADE"), index=True, nullable=False),
    Column("similarity", Float, nullable=False),
)

STORIES = Table(
    "stories",
    METADATA,
    Column("id", BigInteger, primary_key=True),
    Column("theme_id", ForeignKey("themes.id", ondelete="CASCADE"), unique=True, nullable=False),
    Column("status", String(16), default="candidate", nullable=False),
    Column("human_title", Text, nullable=True),
    Column("human_problem", Text, nullable=True),
    Column("human_user_story", Text, nullable=True),
    created_now("created_at"),
    created_now("updated_at"),
    CheckConstraint(in_values("status", STORY_STATUSES), name="ck_stories_status"),
)

RUN_STORIES = Table(
    "run_stories",
    METADATA,
    Column("id", BigInteger, primary_key=True),
    Column("run_id", ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("story_id", ForeignKey("stories.id", ondelete="CASCADE"), nullable=False),
    Column("theme_id", ForeignKey("themes.id", ondelete="CASCADE"), nullable=False),
    Column("title", Text, nullable=False),
    Column("problem", Text, nullable=False),
    Column("user_story", Text, nullable=True),
    Column("acceptance_criteria", ARRAY(Text), default=list, nullable=False),
    Column("severity", String(16), nullable=True),
    Column("severity_reason", Text, nullable=True),
    Column("conversation_count", Integer, default=0, nullable=False),
    Column("customer_count", Integer, default=0, nullable=False),
    _timestamp("first_seen"),
    _timestamp("last_seen"),
    Column("trend", JSONB, default=dict, nullable=False),
    Column("rank", Integer, default=0, nullable=False),
    Column("score", Float, default=0.0, nullable=False),
    Column("text_key", String(64), nullable=True),  # what the text was written from (reuse key)
    Column("text_origin", String(16), default="templated", nullable=False),  # templated | llm | legacy
    # 0006: the named factors behind score and severity (threadline.stories.priority.Priority.to_dict) and
    # the evidence notes, as this run computed them (a snapshot: never updated)
    Column("priority", JSONB, default=dict, server_default=text("'{}'::jsonb"), nullable=False),
    created_now("created_at"),
    UniqueConstraint("run_id", "story_id"),
    Index("ix_run_stories_story_id", "story_id"),
)

RUN_STORY_EVIDENCE = Table(
    "run_story_evidence",
    METADATA,
    Column("id", BigInteger, primary_key=True),
    Column("run_story_id", ForeignKey("run_stories.id", ondelete="CASCADE"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("conversation_id", ForeignKey("conversations.id", ondelete="SET NULL"), index=True, nullable=True),
    Column("conversation_external_id", String(255), nullable=False),
    Column("message_id", BigInteger, nullable=True),  # not a foreign key: history is never deleted
    Column("message_position", Integer, nullable=False),
    Column("message_external_id", String(255), nullable=True),
    Column("author_role", String(16), nullable=False),
    Column("message_sha256", String(64), nullable=True),  # NULL: unknown (migrated from before 0005)
    Column("quote", Text, nullable=False),
    Column("start_offset", Integer, nullable=False),
    Column("end_offset", Integer, nullable=False),
    UniqueConstraint("run_story_id", "position"),
)

TRACKERS = Table(
    "trackers",
    METADATA,
    Column("id", BigInteger, primary_key=True),
    Column("name", String(TRACKER_NAME_CHARS), unique=True, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("config", JSONB, default=dict, nullable=False),
    created_now("created_at"),
)

TRACKER_LINKS = Table(
    "tracker_links",
    METADATA,
    Column("id", BigInteger, primary_key=True),
    Column("story_id", ForeignKey("stories.id", ondelete="CASCADE"), nullable=False),
    Column("tracker_id", ForeignKey("trackers.id", ondelete="CASCADE"), nullable=False),
    Column("item_key", String(TRACKER_KEY_CHARS), nullable=True),
    Column("url", Text, nullable=True),
    created_now("created_at"),
    created_now("updated_at"),
    # committed just before the tracker's create is called: an item may exist, find it before creating again
    _timestamp("create_attempted_at"),
    Column("pushed_run_id", ForeignKey("runs.id", ondelete="SET NULL"), nullable=True),
    Column("pushed_snapshot_id", ForeignKey("run_stories.id", ondelete="SET NULL"), nullable=True),
    Column("pushed_conversations", Integer, nullable=True),  # the count in the item, for "the theme grew"
    Column("block_sha256", String(64), nullable=True),
    Column("edited_by_person", Boolean, default=False, server_default="false", nullable=False),
    Column("closed", Boolean, default=False, server_default="false", nullable=False),
    _timestamp("closed_at"),
    _timestamp("state_checked_at"),
    _timestamp("regression_since"),  # flagged "recurring after close"
    Column("regression_conversations", Integer, nullable=True),  # created after the close
    Column("regression_commented", Boolean, default=False, server_default="false", nullable=False),
    # the surviving story's item this (merged-away) story's item was told about, once (migration 0013)
    Column("merge_commented_key", String(TRACKER_KEY_CHARS), nullable=True),
    UniqueConstraint("story_id", "tracker_id", name="uq_tracker_links_story_tracker"),
    UniqueConstraint("tracker_id", "item_key", name="uq_tracker_links_tracker_item"),
    Index("ix_tracker_links_tracker_id", "tracker_id"),
)

AUDIT_EVENTS = Table(
    "audit_events",
    METADATA,
    Column("id", BigInteger, primary_key=True),
    created_now("at"),
    Column("actor", String(200), nullable=False),
    Column("action", String(64), nullable=False),
    Column("subject_type", String(32), nullable=False),
    Column("subject_id", BigInteger, nullable=True),
    Column("details", JSONB, default=dict, nullable=False),
    Index("ix_audit_events_subject", "subject_type", "subject_id"),
)

RUN_THEME_PASSAGES = Table(
    "run_theme_passages",
    METADATA,
    Column("run_id", ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("theme_id", ForeignKey("themes.id", ondelete="CASCADE"), primary_key=True, index=True),
    Column("rank", Integer, primary_key=True),  # 1: the best answer
    Column("passage_id", ForeignKey("passages.id", ondelete="SET NULL"), nullable=True),
    Column("article_id", ForeignKey("articles.id", ondelete="SET NULL"), nullable=True),
    Column("content_hash", String(64), nullable=False),  # the article version the passage belongs to
    Column("article_title", Text, nullable=False),
    Column("article_url", Text, nullable=True),
    Column("heading", Text, nullable=True),  # the passage's innermost heading
    Column("similarity", Float, nullable=False),
)
