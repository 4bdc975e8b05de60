"""Core tables the read commands query, defined once here and mapped by the ORM models.

`threadline status`, `runs list` and the read model's run views query these tables with
SQLAlchemy Core and never import the ORM (`threadline.db.models`): building 34 declarative
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
