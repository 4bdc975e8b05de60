"""ORM models: the tables of the architecture brief.

Semantics worth knowing before changing anything here:
- Conversations are unique per (source, external id); re-imports upsert them.
- Run membership is history (`run_conversations`), never a column on the conversation.
- Analyses and embeddings are content-addressed: keyed by what went in (input hash),
  with which model and which version, so unchanged input is never recomputed.
- Themes persist across runs; `theme_members` says which conversations a given run put
  in which theme.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

EMBEDDING_DIMENSIONS = 384  # output size of all-MiniLM-L6-v2, the default embedding model

RUN_STATUSES = ("queued", "running", "stopping", "stopped", "succeeded", "failed")
AUTHOR_ROLES = ("customer", "agent", "bot", "note")
STORY_STATUSES = ("candidate", "accepted", "rejected", "exported")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSONB, list[str]: ARRAY(Text)}


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class Source(Base):
    """A connector instance: a file import target, an Intercom workspace, ..."""

    __tablename__ = "sources"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200), unique=True)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    sync_state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = _now()


class Contact(Base):
    """A customer as their source knows them."""

    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("source_id", "external_id"),)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(Text)
    company: Mapped[str | None] = mapped_column(Text)
    plan: Mapped[str | None] = mapped_column(Text)
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = _now()


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (
        UniqueConstraint("source_id", "external_id"),
        Index("ix_conversations_created_at", "created_at"),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    state: Mapped[str | None] = mapped_column(String(32))
    url: Mapped[str | None] = mapped_column(Text)
    subject: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(default=list)
    assignee: Mapped[str | None] = mapped_column(Text)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    content_hash: Mapped[str] = mapped_column(String(64))
    raw: Mapped[dict[str, Any]] = mapped_column(default=dict)
    notes: Mapped[list[str]] = mapped_column(default=list)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    imported_at: Mapped[datetime] = _now()
    changed_at: Mapped[datetime] = _now()

    messages: Mapped[list[Message]] = relationship(
        back_populates="conversation", order_by="Message.position", cascade="all, delete-orphan"
    )
    contact: Mapped[Contact | None] = relationship()


class Message(Base):
    """One ordered part of a conversation; `raw_text` as received, `text` normalized."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("conversation_id", "position"),
        CheckConstraint(_in("author_role", AUTHOR_ROLES), name="ck_messages_author_role"),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    external_id: Mapped[str | None] = mapped_column(String(255))
    author_role: Mapped[str] = mapped_column(String(16))
    author_id: Mapped[str | None] = mapped_column(Text)
    raw_text: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    truncated: Mapped[bool] = mapped_column(Boolean, default=False)

    conversation: Mapped[Conversation] = relationship(back_populates="messages")


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (CheckConstraint(_in("status", RUN_STATUSES), name="ck_runs_status"),)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    phase: Mapped[str | None] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    counters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    stop_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # 0002: bumped by resume


class RunConversation(Base):
    """Run membership: which conversations a run covered. History; never overwritten."""

    __tablename__ = "run_conversations"
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    added_at: Mapped[datetime] = _now()


class Analysis(Base):
    """A per-conversation stage result, content-addressed by its input."""

    __tablename__ = "analyses"
    __table_args__ = (UniqueConstraint("conversation_id", "stage", "input_hash", "model", "version"),)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    stage: Mapped[str] = mapped_column(String(32))
    input_hash: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(64))
    output: Mapped[dict[str, Any]] = mapped_column(default=dict)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = _now()


class Embedding(Base):
    """A conversation's vector for one model and one input text (by hash)."""

    __tablename__ = "embeddings"
    __table_args__ = (UniqueConstraint("conversation_id", "model", "input_hash"),)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(String(200))
    input_hash: Mapped[str] = mapped_column(String(64))
    dimensions: Mapped[int] = mapped_column(Integer)
    vector: Mapped[Any] = mapped_column(Vector())
    created_at: Mapped[datetime] = _now()


class Theme(Base):
    """A recurring problem, persistent across runs; level 0 = top-level group, 1 = theme."""

    __tablename__ = "themes"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("themes.id", ondelete="SET NULL"))
    level: Mapped[int] = mapped_column(Integer, default=1)
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    keywords: Mapped[list[str]] = mapped_column(default=list)
    centroid: Mapped[Any | None] = mapped_column(Vector())
    embedding_model: Mapped[str | None] = mapped_column(String(200))
    representative_message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    conversation_type: Mapped[str | None] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(Integer, default=0)
    first_seen: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    first_run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    last_run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class ThemeMember(Base):
    """Which theme a run put a conversation in (one leaf theme per conversation per run)."""

    __tablename__ = "theme_members"
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True)
    theme_id: Mapped[int] = mapped_column(ForeignKey("themes.id", ondelete="CASCADE"), index=True)
    similarity: Mapped[float] = mapped_column(Float)


class Story(Base):
    """A backlog story for one theme; refreshed by each run, edits and status kept."""

    __tablename__ = "stories"
    __table_args__ = (CheckConstraint(_in("status", STORY_STATUSES), name="ck_stories_status"),)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    theme_id: Mapped[int] = mapped_column(ForeignKey("themes.id", ondelete="CASCADE"), unique=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    title: Mapped[str] = mapped_column(Text)
    problem: Mapped[str] = mapped_column(Text)
    user_story: Mapped[str | None] = mapped_column(Text)
    acceptance_criteria: Mapped[list[str]] = mapped_column(default=list)
    severity: Mapped[str | None] = mapped_column(String(16))
    severity_reason: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="candidate")
    edited: Mapped[bool] = mapped_column(Boolean, default=False)
    conversation_count: Mapped[int] = mapped_column(Integer, default=0)
    customer_count: Mapped[int] = mapped_column(Integer, default=0)
    first_seen: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    trend: Mapped[dict[str, Any]] = mapped_column(default=dict)
    rank: Mapped[int] = mapped_column(Integer, default=0)
    score: Mapped[float] = mapped_column(Float, default=0.0)
    # 0005: the named factors behind score and severity (threadline.stories.priority.Priority.to_dict)
    priority: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()

    evidence: Mapped[list[StoryEvidence]] = relationship(
        order_by="StoryEvidence.position", cascade="all, delete-orphan"
    )
    theme: Mapped[Theme] = relationship()


class StoryEvidence(Base):
    """A verbatim quote: `quote == messages.text[start:end]` for the linked message."""

    __tablename__ = "story_evidence"
    __table_args__ = (UniqueConstraint("story_id", "position"),)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    story_id: Mapped[int] = mapped_column(ForeignKey("stories.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    quote: Mapped[str] = mapped_column(Text)
    start_offset: Mapped[int] = mapped_column(Integer)
    end_offset: Mapped[int] = mapped_column(Integer)


class DeadLetter(Base):
    """An item a stage gave up on, with its error; retried at most once per failure."""

    __tablename__ = "dead_letters"
    __table_args__ = (
        # One open (not yet retried) dead letter per item, so a failure is recorded once.
        Index(
            "ux_dead_letters_open_item",
            "run_id",
            "stage",
            "item",
            unique=True,
            postgresql_where=text("retried_at IS NULL"),
        ),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    stage: Mapped[str] = mapped_column(String(32))
    item: Mapped[str] = mapped_column(Text)
    error_class: Mapped[str] = mapped_column(String(200))
    error_message: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    failed_at: Mapped[datetime] = _now()
    retried_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ApiToken(Base):
    """An HTTP API token; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = _now()
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


RUN_ITEM_STATES = ("pending", "done", "skipped", "dead")
RUN_PHASE_STATES = ("pending", "active", "done")


class RunItem(Base):
    """State of one conversation in one per-conversation stage of a run (migration 0002).

    Transitions leave `pending` only through `UPDATE ... WHERE state = 'pending'
    RETURNING`, so a batch executed twice (crash takeover) is counted once.
    """

    __tablename__ = "run_items"
    __table_args__ = (
        CheckConstraint(_in("state", RUN_ITEM_STATES), name="ck_run_items_state"),
        Index("ix_run_items_run_stage_state", "run_id", "stage", "state"),
    )
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    stage: Mapped[str] = mapped_column(String(32), primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    reason: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RunPhase(Base):
    """State and timing of one phase of a run (migration 0002); `position` orders the phases."""

    __tablename__ = "run_phases"
    __table_args__ = (CheckConstraint(_in("state", RUN_PHASE_STATES), name="ck_run_phases_state"),)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    phase: Mapped[str] = mapped_column(String(32), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
