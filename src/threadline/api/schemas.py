"""Response and request models: the OpenAPI schema of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer

from threadline.engine.status import SyncStatus
from threadline.text.pii import mask_for_display

MAX_TITLE_CHARS = 300  # characters: a story title is a line, not a paragraph
MAX_STORY_TEXT_CHARS = 20_000  # characters: the same bound as one message
MAX_SOURCE_NAME_CHARS = 200  # characters: matches sources.name

StoryStatus = Literal["candidate", "accepted", "rejected", "exported"]


def _masked(value: Any) -> Any:
    """Customer-derived text as the API shows it: personal data masked (``insight.mask_personal_data``)."""
    if isinstance(value, str):
        return mask_for_display(value)
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: Literal["ok", "unavailable"]


class SourceOut(BaseModel):
    id: int
    name: str
    kind: str
    conversations: int
    created_at: datetime


class MessageOut(BaseModel):
    id: int
    position: int
    author_role: str
    text: str
    created_at: datetime | None
    truncated: bool

    @field_serializer("text")
    def _mask(self, value: Any) -> Any:
        return _masked(value)


class ConversationSummary(BaseModel):
    id: int
    external_id: str
    source: str
    subject: str | None
    state: str | None
    created_at: datetime | None
    messages: int
    url: str | None

    @field_serializer("subject")
    def _mask(self, value: Any) -> Any:
        return _masked(value)


class ConversationThemeRef(BaseModel):
    run_id: int
    theme_id: int
    theme: str

    @field_serializer("theme")
    def _mask(self, value: Any) -> Any:
        return _masked(value)


class ConversationDetail(ConversationSummary):
    tags: list[str]
    message_list: list[MessageOut]
    themes: list[ConversationThemeRef]


class ThemeSummary(BaseModel):
    id: int
    name: str
    size: int
    keywords: list[str]
    first_seen: str | None
    last_seen: str | None

    @field_serializer("name", "keywords")
    def _mask(self, value: Any) -> Any:
        return _masked(value)


class ThemeGroup(BaseModel):
    id: int | None
    name: str
    size: int
    themes: list[ThemeSummary]

    @field_serializer("name")
    def _mask(self, value: Any) -> Any:
        return _masked(value)


class ThemeDetail(BaseModel):
    id: int
    name: str
    description: str | None
    level: int
    parent_id: int | None
    parent: str | None
    keywords: list[str]
    size: int
    run_id: int | None
    first_seen: datetime | None
    last_seen: datetime | None
    story_id: int | None

    @field_serializer("name", "description", "parent", "keywords")
    def _mask(self, value: Any) -> Any:
        return _masked(value)


class TrendPoint(BaseModel):
    start: datetime
    count: int


class TrendSeries(BaseModel):
    theme_id: int | None
    run_id: int | None
    bucket: Literal["day", "week", "month"]
    points: list[TrendPoint]


class EvidenceOut(BaseModel):
    quote: str
    conversation_id: int
    conversation_external_id: str
    conversation_url: str | None
    message_id: int
    start: int
    end: int

    @field_serializer("quote")
    def _mask(self, value: Any) -> Any:
        return _masked(value)


class StoryOut(BaseModel):
    id: int
    rank: int
    title: str
    theme_id: int
    theme: str | None
    status: StoryStatus
    edited: bool
    severity: str | None
    severity_reason: str | None
    problem: str
    user_story: str | None
    acceptance_criteria: list[str]
    conversations: int
    customers: int
    first_seen: str | None
    last_seen: str | None
    trend: dict[str, Any]
    priority: dict[str, Any] = Field(
        default_factory=dict,
        description="The named factors behind rank and severity: score, severity, severity_reason, factors "
        "(name, value, multiplier, reason), signals, customers_known, customers_unknown_conversations, companies, "
        "plans, evidence_notes (see threadline.stories.priority).",
    )
    run_id: int | None
    evidence: list[EvidenceOut]

    @field_serializer("title", "theme", "problem", "user_story", "acceptance_criteria", "severity_reason")
    def _mask(self, value: Any) -> Any:
        return _masked(value)


class StoryPatch(BaseModel):
    """Fields a person may change; text edits mark the story as edited so runs keep them."""

    model_config = ConfigDict(extra="forbid")
    title: str | None = Field(default=None, min_length=1, max_length=MAX_TITLE_CHARS)
    problem: str | None = Field(default=None, min_length=1, max_length=MAX_STORY_TEXT_CHARS)
    user_story: str | None = Field(default=None, max_length=MAX_STORY_TEXT_CHARS)
    status: StoryStatus | None = None


class RunStart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str | None = Field(default=None, min_length=1, max_length=MAX_SOURCE_NAME_CHARS)
    since: datetime | None = None
    until: datetime | None = None


class RunOut(BaseModel):
    id: int
    status: str
    phase: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    counters: dict[str, Any] = Field(default_factory=dict)
    conversations: int = 0
    progress: float = Field(default=0.0, ge=0.0, le=1.0)
    dead_letters: int = 0
    generation: int | None = None
    stop_requested_at: datetime | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None


class DeadLetterOut(BaseModel):
    id: int
    run_id: int | None = None
    stage: str
    item: str
    error_class: str
    error_message: str
    attempts: int = 1
    failed_at: datetime | None = None
    retried_at: datetime | None = None


class RetryResult(BaseModel):
    id: int
    retried: bool


class VolumePoint(BaseModel):
    start: datetime
    count: int


class RisingTheme(BaseModel):
    theme_id: int
    story_id: int
    title: str
    conversations: int
    direction: str
    counts: list[int]

    @field_serializer("title")
    def _mask(self, value: Any) -> Any:
        return _masked(value)


class Overview(BaseModel):
    conversations: int
    volume: list[VolumePoint]
    rising: list[RisingTheme]
    current_run: RunOut | None
    latest_run_id: int | None


class Problem(BaseModel):
    detail: str


class SyncJobOut(BaseModel):
    """The last sync job of a source: procrastinate's status, and what the job recorded."""

    job_id: int
    status: SyncStatus
    queued_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = Field(None, description="Why the sync failed (never the token); null unless failed/cancelled.")
    counters: dict[str, int] | None = Field(None, description="Sync counters (fetched, written, deleted, ...).")
    watermark: datetime | None = Field(None, description="updated_at up to which the source is synced.")


class SourceWithSyncOut(SourceOut):
    """A source with its conversation count and its last sync (null for file sources and never-synced ones)."""

    last_sync: SyncJobOut | None = None


class SourceSyncOut(BaseModel):
    source_id: int
    last_sync: SyncJobOut | None


class SyncQueued(BaseModel):
    """Answer of POST /sources/{id}/sync: the source's active sync job; `created` is false when it already existed."""

    source_id: int
    job_id: int
    created: bool
    status: SyncStatus
