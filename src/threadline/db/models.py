"""ORM models: the tables of the architecture brief.

Semantics worth knowing before changing anything here:
- Conversations are unique per (source, external id); re-imports upsert them.
- Run membership is history (`run_conversations`), never a column on the conversation.
- Analyses and embeddings are content-addressed: keyed by what went in (input hash),
  with which model and which version, so unchanged input is never recomputed.
- A run reads a scope (a fixed set of sources). Theme lineages and story identities belong
  to one scope and carry only identity and human state; what each run found (names,
  memberships, stories, evidence as quoted) is a snapshot written once by that run
  (`run_themes`, `theme_members`, `run_stories`, `run_story_evidence`), never updated.
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
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from threadline.db.tables import (
    AUDIT_EVENTS,
    CONVERSATIONS,
    DEAD_LETTERS,
    MESSAGES,
    METADATA,
    RUN_CONVERSATIONS,
    RUN_PHASES,
    RUN_STORIES,
    RUN_STORY_EVIDENCE,
    RUN_THEME_PASSAGES,
    RUN_THEMES,
    RUNS,
    SCOPES,
    SOURCES,
    STORIES,
    THEME_MEMBERS,
    THEMES,
    TRACKER_LINKS,
    TRACKER_NAME_CHARS,
    TRACKERS,
    in_values,
)

EMBEDDING_DIMENSIONS = 384  # output size of all-MiniLM-L6-v2, the default embedding model


_in = in_values  # the CHECK-constraint helper of the tables below (defined with the Core tables)


class Base(DeclarativeBase):
    metadata = METADATA  # the tables of `threadline.db.tables` are mapped below; one metadata for all
    type_annotation_map = {dict[str, Any]: JSONB, list[str]: ARRAY(Text)}


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class Source(Base):
    """A connector instance: a file import target, an Intercom workspace, ..."""

    __table__ = SOURCES
    id: Mapped[int]
    kind: Mapped[str]
    name: Mapped[str]
    config: Mapped[dict[str, Any]]
    sync_state: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


SYNC_KINDS = ("sync", "import")  # a connector's sync, or a file import
SYNC_STATUSES = ("running", "succeeded", "failed")  # as recorded; a dead process's "running" reads "interrupted"


class SourceSync(Base):
    """One sync of a connector source, or one file import (migration 0008).

    Counters are incremented by the sink in the transaction that commits what they count, so
    a sync stopped at any point shows what it did commit. `job_id` is the procrastinate job
    when the sync ran as one (the API's sync), else NULL (CLI).
    """

    __tablename__ = "source_syncs"
    __table_args__ = (
        CheckConstraint(_in("kind", SYNC_KINDS), name="ck_source_syncs_kind"),
        CheckConstraint(_in("status", SYNC_STATUSES), name="ck_source_syncs_status"),
        Index("ix_source_syncs_source_id_id", "source_id", "id"),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    job_id: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="running", server_default="running")
    started_at: Mapped[datetime] = _now()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    changed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    unchanged: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    deleted: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    dead_letters: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)


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
    __table__ = CONVERSATIONS
    id: Mapped[int]
    source_id: Mapped[int]
    external_id: Mapped[str]
    created_at: Mapped[datetime | None]
    updated_at: Mapped[datetime | None]
    state: Mapped[str | None]
    url: Mapped[str | None]
    subject: Mapped[str | None]
    tags: Mapped[list[str]]
    assignee: Mapped[str | None]
    contact_id: Mapped[int | None]
    content_hash: Mapped[str]
    raw: Mapped[dict[str, Any]]
    notes: Mapped[list[str]]
    deleted_at: Mapped[datetime | None]
    imported_at: Mapped[datetime]
    changed_at: Mapped[datetime]
    # 0008: the sync (or import) that inserted the row and the last one that changed it; NULL: not recorded
    created_by_sync_id: Mapped[int | None]
    changed_by_sync_id: Mapped[int | None]

    messages: Mapped[list[Message]] = relationship(
        back_populates="conversation", order_by="Message.position", cascade="all, delete-orphan"
    )
    contact: Mapped[Contact | None] = relationship()


class Message(Base):
    """One ordered part of a conversation; `raw_text` as received, `text` normalized."""

    __table__ = MESSAGES
    id: Mapped[int]
    conversation_id: Mapped[int]
    position: Mapped[int]
    external_id: Mapped[str | None]
    author_role: Mapped[str]
    author_id: Mapped[str | None]
    raw_text: Mapped[str]
    text: Mapped[str]
    created_at: Mapped[datetime | None]
    truncated: Mapped[bool]

    conversation: Mapped[Conversation] = relationship(back_populates="messages")


class Run(Base):
    __table__ = RUNS
    id: Mapped[int]
    status: Mapped[str]
    phase: Mapped[str | None]
    params: Mapped[dict[str, Any]]
    counters: Mapped[dict[str, Any]]
    error: Mapped[str | None]
    # LLM spend of the run (migration 0008): settled cost, and cost reserved by calls in flight.
    llm_spent: Mapped[float]
    llm_reserved: Mapped[float]
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    stop_requested_at: Mapped[datetime | None]
    generation: Mapped[int]
    scope_id: Mapped[int]
    period_start: Mapped[datetime | None]
    period_end: Mapped[datetime | None]
    snapshot: Mapped[bool]


class RunConversation(Base):
    """Run membership: which conversations a run covered. History; never overwritten."""

    __table__ = RUN_CONVERSATIONS
    run_id: Mapped[int]
    conversation_id: Mapped[int]
    added_at: Mapped[datetime]


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


class Scope(Base):
    """The concrete, sorted set of sources a run reads (migration 0005).

    Lineages (theme identities) and story identities belong to one scope: runs of different
    scopes never share a theme, a name or a story. `key` is the sorted source ids joined by
    commas ("" for a scope of no source), unique, so one set of sources is one scope.
    """

    __table__ = SCOPES
    id: Mapped[int]
    key: Mapped[str]
    source_ids: Mapped[list[int]]
    created_at: Mapped[datetime]


class Theme(Base):
    """A theme lineage: the identity of a theme across the runs of one scope (level 0 = group, 1 = theme).

    What a run found (name, key phrases, size, hierarchy) is in `run_themes`, written once per
    run. The lineage carries only identity and human state: a person's name for it, "keep
    separate", and the lineage it was merged into (by a person or by a later run).
    """

    __table__ = THEMES
    id: Mapped[int]
    scope_id: Mapped[int]
    level: Mapped[int]
    first_run_id: Mapped[int | None]
    last_run_id: Mapped[int | None]
    human_name: Mapped[str | None]
    keep_separate: Mapped[bool]
    merged_into_id: Mapped[int | None]
    merged_by: Mapped[str | None]  # "person" or "run"
    merged_at: Mapped[datetime | None]
    merged_run_id: Mapped[int | None]  # the run that merged it
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class RunTheme(Base):
    """What one run found for one lineage: written once by the run, never updated (a snapshot).

    `name` is NULL only for runs that predate snapshots (migration 0005), whose names were
    overwritten by later runs: views say "not recorded for this run" then.
    """

    __table__ = RUN_THEMES
    run_id: Mapped[int]
    theme_id: Mapped[int]
    level: Mapped[int]
    parent_id: Mapped[int | None]  # the group's lineage in this run
    name: Mapped[str | None]
    description: Mapped[str | None]
    keywords: Mapped[list[str] | None]
    size: Mapped[int]
    first_seen: Mapped[datetime | None]
    last_seen: Mapped[datetime | None]
    origin: Mapped[str]  # new | continued | revived | legacy
    representative_conversation_id: Mapped[int | None]
    # Top entities of the theme's conversations, [{"type", "value", "share"}] most shared first (coverage stage).
    entities: Mapped[list[dict[str, Any]] | None]


class ThemeMember(Base):
    """Which lineage a run put a conversation in (one leaf theme per conversation per run)."""

    __table__ = THEME_MEMBERS
    run_id: Mapped[int]
    conversation_id: Mapped[int]
    theme_id: Mapped[int]
    similarity: Mapped[float]


class Story(Base):
    """A story identity: one per theme lineage, with the human state that outlives runs.

    The text and figures a run wrote are in `run_stories`; a person's status and edits are
    here and are shown with every snapshot of the story. `human_*` NULL means "the run's text".
    """

    __table__ = STORIES
    id: Mapped[int]
    theme_id: Mapped[int]
    status: Mapped[str]
    human_title: Mapped[str | None]
    human_problem: Mapped[str | None]
    human_user_story: Mapped[str | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    theme: Mapped[Theme] = relationship()

    @property
    def edited(self) -> bool:
        return any(v is not None for v in (self.human_title, self.human_problem, self.human_user_story))


class RunStory(Base):
    """A story as one run wrote it: text, counts, rank, severity and trend (a snapshot, never updated)."""

    __table__ = RUN_STORIES
    id: Mapped[int]
    run_id: Mapped[int]
    story_id: Mapped[int]
    theme_id: Mapped[int]
    title: Mapped[str]
    problem: Mapped[str]
    user_story: Mapped[str | None]
    acceptance_criteria: Mapped[list[str]]
    severity: Mapped[str | None]
    severity_reason: Mapped[str | None]
    conversation_count: Mapped[int]
    customer_count: Mapped[int]
    first_seen: Mapped[datetime | None]
    last_seen: Mapped[datetime | None]
    trend: Mapped[dict[str, Any]]
    rank: Mapped[int]
    score: Mapped[float]
    text_key: Mapped[str | None]  # what the text was written from (reuse key)
    text_origin: Mapped[str]  # templated | llm | legacy
    # 0006: the named factors behind score and severity (threadline.stories.priority.Priority.to_dict) and
    # the evidence notes, as this run computed them (a snapshot: never updated)
    priority: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class RunStoryEvidence(Base):
    """A quote as the run quoted it, copied (never a link that later imports could re-point).

    When written, `quote == text[start:end]` of the customer message at `message_position`
    of the conversation, whose text hashed to `message_sha256`; a later change of that
    message is detected by comparing the hash, and the snapshot is marked, never rewritten
    (except by `threadline forget`).
    """

    __table__ = RUN_STORY_EVIDENCE
    id: Mapped[int]
    run_story_id: Mapped[int]
    position: Mapped[int]
    conversation_id: Mapped[int | None]
    conversation_external_id: Mapped[str]
    message_id: Mapped[int | None]  # not a foreign key: history is never deleted
    message_position: Mapped[int]
    message_external_id: Mapped[str | None]
    author_role: Mapped[str]
    message_sha256: Mapped[str | None]  # NULL: unknown (migrated from before 0005)
    quote: Mapped[str]
    start_offset: Mapped[int]
    end_offset: Mapped[int]


class Tracker(Base):
    """A configured tracker (GitHub repository, Jira project, Linear team) stories are exported to (migration 0006).

    `config` is the exporter's configuration model as JSON: names of environment variables
    for tokens, never the tokens.
    """

    __table__ = TRACKERS
    id: Mapped[int]
    name: Mapped[str]
    kind: Mapped[str]
    config: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class TrackerLink(Base):
    """The one tracker item of a story identity in one tracker (migration 0006).

    UNIQUE (story_id, tracker_id): one item per story and tracker, enforced by the database.
    UNIQUE (tracker_id, item_key) (migration 0016): one story per item of a tracker, so `export
    --link` cannot point two stories at the same item (reservations, `item_key` NULL, never clash).
    An export reserves the row first (`item_key` NULL), then finds the item by its marker or
    creates it, then fills `item_key`; a row left reserved by a crash is healed by the next
    export finding the item again. `block_sha256` is the hash of the block Threadline last
    wrote; `pushed_run_id` / `pushed_snapshot_id` the story snapshot it wrote from.
    """

    __table__ = TRACKER_LINKS
    id: Mapped[int]
    story_id: Mapped[int]
    tracker_id: Mapped[int]
    item_key: Mapped[str | None]
    url: Mapped[str | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # committed just before the tracker's create is called: an item may exist, find it before creating again
    create_attempted_at: Mapped[datetime | None]
    pushed_run_id: Mapped[int | None]
    pushed_snapshot_id: Mapped[int | None]
    pushed_conversations: Mapped[int | None]  # the count in the item, for "the theme grew"
    block_sha256: Mapped[str | None]
    edited_by_person: Mapped[bool]
    closed: Mapped[bool]
    closed_at: Mapped[datetime | None]
    state_checked_at: Mapped[datetime | None]
    regression_since: Mapped[datetime | None]  # flagged "recurring after close"
    regression_conversations: Mapped[int | None]  # created after the close
    regression_commented: Mapped[bool]
    # the surviving story's item this (merged-away) story's item was told about, once (migration 0013)
    merge_commented_key: Mapped[str | None]


NOTIFICATION_STATUSES = ("pending", "delivered", "failed")


class NotificationChannel(Base):
    """A generic webhook or a Slack incoming webhook that receives digests (migration 0008).

    `config` names the environment variables holding the URL and the signing secret, never them.
    """

    __tablename__ = "notification_channels"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(TRACKER_NAME_CHARS), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = _now()


class Notification(Base):
    """One digest for one channel and one event (`run:12`); UNIQUE so a re-run job never sends it twice.

    The payload is stored as sent (masked), so a retry sends exactly what the first attempt tried to.
    """

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("channel_id", "event_key", name="uq_notifications_channel_event"),
        CheckConstraint(_in("status", NOTIFICATION_STATUSES), name="ck_notifications_status"),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("notification_channels.id", ondelete="CASCADE"))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    event_key: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = _now()
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Schedule(Base):
    """A periodic sync -> run -> deliver of one scope (migration 0009): every N seconds or on a cron expression.

    `key` is the scope's sorted source names joined by commas: one schedule per scope. The
    scheduler tick claims due rows (`next_at <= now()`, row locks skipping locked rows), moves
    `next_at` on and queues the scheduled job in the same transaction.
    """

    __tablename__ = "schedules"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    key: Mapped[str] = mapped_column(Text, unique=True)
    source_names: Mapped[list[str]] = mapped_column(ARRAY(Text))
    every_s: Mapped[int | None] = mapped_column(Integer)
    cron: Mapped[str | None] = mapped_column(Text)
    next_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()


AUDIT_SUBJECTS = ("story", "theme", "run", "conversation", "contact")


class AuditEvent(Base):
    """A human action: who (API token name, or "cli"), when, what (migration 0005).

    Status changes, edits, renames, merges, exports and erasure requests are recorded here
    and shown in the history of what they touched.
    """

    __table__ = AUDIT_EVENTS
    id: Mapped[int]
    at: Mapped[datetime]
    actor: Mapped[str]
    action: Mapped[str]
    subject_type: Mapped[str]
    subject_id: Mapped[int | None]
    details: Mapped[dict[str, Any]]


class DeadLetter(Base):
    """An item a stage gave up on, with its error; retried at most once per failure."""

    __table__ = DEAD_LETTERS
    id: Mapped[int]
    run_id: Mapped[int | None]
    stage: Mapped[str]
    item: Mapped[str]
    error_class: Mapped[str]
    error_message: Mapped[str]
    attempts: Mapped[int]
    failed_at: Mapped[datetime]
    retried_at: Mapped[datetime | None]


class ApiToken(Base):
    """An HTTP API token; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = _now()
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebSession(Base):
    """A dashboard sign-in (migration 0008): the cookie carries a random id whose SHA-256 is stored here.

    Signing out sets `ended_at`, which ends the session for every copy of its cookie.
    """

    __tablename__ = "web_sessions"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    sid_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("api_tokens.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = _now()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


RUN_ITEM_STATES = ("pending", "done", "skipped", "dead")


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

    __table__ = RUN_PHASES
    run_id: Mapped[int]
    phase: Mapped[str]
    position: Mapped[int]
    state: Mapped[str]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


KNOWLEDGE_NAME_CHARS = 200  # characters of `knowledge_sources.name`: a name a person types
ARTICLE_STATUSES = ("active", "removed")
# Why an article is confusing: linked, then the customer still stuck; or a theme it covers did not fall after its date.
CONFUSING_KINDS = ("still_stuck", "volume_not_falling")
KNOWLEDGE_SYNC_STATUSES = ("running", "succeeded", "failed")


class KnowledgeSource(Base):
    """A knowledge connector instance: a folder of Markdown/HTML, a documentation site, a help center (0008).

    Like `sources` for conversations, but its own table: knowledge is not part of a run's
    scope of conversation sources. `options` is the connector's configuration model as JSON
    (names of environment variables for tokens, never the tokens); `sync_state` is the
    connector's own state (pages that failed, to retry next sync), written with the data.
    """

    __tablename__ = "knowledge_sources"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(KNOWLEDGE_NAME_CHARS), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    sync_state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = _now()


class KnowledgeSync(Base):
    """One sync of a knowledge source: the job every article and passage it wrote points back to (0008).

    `job_id` is the procrastinate job that ran it (NULL when run in the foreground by the CLI) (0016).
    """

    __tablename__ = "knowledge_syncs"
    __table_args__ = (CheckConstraint(_in("status", KNOWLEDGE_SYNC_STATUSES), name="ck_knowledge_syncs_status"),)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    knowledge_source_id: Mapped[int] = mapped_column(ForeignKey("knowledge_sources.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="running")
    counters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = _now()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    job_id: Mapped[int | None] = mapped_column(BigInteger)


class Article(Base):
    """A help-center article or documentation page, unique per (knowledge source, external id) (0008).

    `content_hash` is the SHA-256 of the current title and text: a sync that sees the same
    hash writes nothing. A page that disappeared is `removed` (kept, with its passages, for
    the snapshots that used it). `created_by_sync_id` / `changed_by_sync_id` trace every row
    to the sync that wrote it.
    """

    __tablename__ = "articles"
    __table_args__ = (
        UniqueConstraint("knowledge_source_id", "external_id"),
        CheckConstraint(_in("status", ARTICLE_STATUSES), name="ck_articles_status"),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    knowledge_source_id: Mapped[int] = mapped_column(ForeignKey("knowledge_sources.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)  # Markdown: headings as `#` lines
    content_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="active", server_default="active")
    source_updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by_sync_id: Mapped[int | None] = mapped_column(ForeignKey("knowledge_syncs.id", ondelete="SET NULL"))
    changed_by_sync_id: Mapped[int | None] = mapped_column(ForeignKey("knowledge_syncs.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = _now()
    changed_at: Mapped[datetime] = _now()
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Passage(Base):
    """One heading section of one version of an article (by content hash), with its vector (0008).

    Versions are never rewritten: a changed article gets new passages under its new hash, so
    what a run used stays readable. `start_offset`/`end_offset` locate `text` in the body of
    that version; `heading_path` is the headings above it, outermost first. The HNSW index on
    `embedding` is built concurrently after a sync (`threadline.connectors.knowledge.sink`),
    never maintained by the migration.
    """

    __tablename__ = "passages"
    __table_args__ = (
        UniqueConstraint("article_id", "content_hash", "position"),
        Index("ix_passages_article_hash", "article_id", "content_hash"),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"))
    content_hash: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer)
    heading_path: Mapped[list[str]] = mapped_column(default=list)
    text: Mapped[str] = mapped_column(Text)
    start_offset: Mapped[int] = mapped_column(Integer)
    end_offset: Mapped[int] = mapped_column(Integer)
    model: Mapped[str] = mapped_column(String(200))
    embedding: Mapped[Any] = mapped_column(Vector(EMBEDDING_DIMENSIONS))
    created_by_sync_id: Mapped[int | None] = mapped_column(ForeignKey("knowledge_syncs.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = _now()


class RunThemePassage(Base):
    """A passage that answers one leaf theme of a run, as the run saw it (0013; a snapshot, never updated).

    Title, URL, heading and the passage's content hash are copied, so a later sync never changes
    what the run showed; `passage_id` / `article_id` point at the rows while they exist.
    """

    __table__ = RUN_THEME_PASSAGES
    run_id: Mapped[int]
    theme_id: Mapped[int]
    rank: Mapped[int]  # 1: the best answer
    passage_id: Mapped[int | None]
    article_id: Mapped[int | None]
    content_hash: Mapped[str]  # the article version the passage belongs to
    article_title: Mapped[str]
    article_url: Mapped[str | None]
    heading: Mapped[str | None]  # the passage's innermost heading
    similarity: Mapped[float]


class RunDocGap(Base):
    """A leaf theme of a run that is mostly questions and that no passage covers (0013; a snapshot)."""

    __tablename__ = "run_doc_gaps"
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    theme_id: Mapped[int] = mapped_column(ForeignKey("themes.id", ondelete="CASCADE"), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer)  # 1: the largest impact
    conversations: Mapped[int] = mapped_column(Integer)
    customers: Mapped[int] = mapped_column(Integer)
    question_share: Mapped[float] = mapped_column(Float)
    best_similarity: Mapped[float | None] = mapped_column(Float)  # closest passage of any article (below threshold)
    example_conversation_ids: Mapped[list[int]] = mapped_column(ARRAY(BigInteger), server_default="{}")


class RunConfusingArticle(Base):
    """A confusing article of a run (0013, 0016; a snapshot), one row per article and kind.

    `still_stuck`: linked in conversations after which customers were still stuck (link counts
    set). `volume_not_falling`: it covers `theme_id`, whose conversations per day did not fall in
    the `window_days` after `article_updated_at` (counts and shares of the theme before/after set).
    """

    __tablename__ = "run_confusing_articles"
    __table_args__ = (CheckConstraint(_in("kind", CONFUSING_KINDS), name="ck_run_confusing_articles_kind"),)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer, primary_key=True)  # 1: the largest impact
    article_id: Mapped[int | None] = mapped_column(ForeignKey("articles.id", ondelete="SET NULL"))
    content_hash: Mapped[str] = mapped_column(String(64))
    article_title: Mapped[str] = mapped_column(Text)
    article_url: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(24), default="still_stuck", server_default="still_stuck")
    linked_conversations: Mapped[int | None] = mapped_column(Integer)  # still_stuck only
    stuck_conversations: Mapped[int | None] = mapped_column(Integer)  # still_stuck only
    customers: Mapped[int] = mapped_column(Integer)  # distinct known customers among the stuck (or after) conversations
    theme_id: Mapped[int | None] = mapped_column(ForeignKey("themes.id", ondelete="SET NULL"))  # volume_not_falling
    article_updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    window_days: Mapped[int | None] = mapped_column(Integer)
    conversations_before: Mapped[int | None] = mapped_column(Integer)  # the theme's, in the window before the date
    conversations_after: Mapped[int | None] = mapped_column(Integer)
    share_before: Mapped[float | None] = mapped_column(Float)  # the theme's share of the run's conversations
    share_after: Mapped[float | None] = mapped_column(Float)
    example_conversation_ids: Mapped[list[int]] = mapped_column(ARRAY(BigInteger), server_default="{}")


class SourceKnowledge(Base):
    """A knowledge source attached to a conversation source (0017): runs reading that source use it.

    A run's `coverage` stage uses the knowledge attached to any source of its scope; when no
    source of the scope has an attachment, all knowledge. Deleting either side deletes the row.
    """

    __tablename__ = "source_knowledge"
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True)
    knowledge_source_id: Mapped[int] = mapped_column(
        ForeignKey("knowledge_sources.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[datetime] = _now()


class RunKnowledgeSource(Base):
    """A knowledge source a run's `coverage` stage used (0017; a snapshot, never updated).

    No foreign key on `knowledge_source_id` and the name copied: the record outlives the knowledge
    source. `attached` is False when the run used all knowledge because no source of its scope had any.
    """

    __tablename__ = "run_knowledge_sources"
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    knowledge_source_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    attached: Mapped[bool] = mapped_column(Boolean)
