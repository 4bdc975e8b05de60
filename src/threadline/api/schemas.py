"""Response and request models: the OpenAPI schema of the HTTP API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from threadline.db.tables import SOURCE_NAME_CHARS, TRACKER_KEY_CHARS
from threadline.engine.status import SyncStatus
from threadline.server.params import WITHIN_STORY_TEXT_CHARS, WITHIN_TITLE_CHARS, RequestBody

MAX_THEME_NAME_CHARS = 200  # characters: a theme name is a label (as `engine.curation`)
MAX_RUN_SOURCES = 100  # sources named by one run request: a scope, not a directory listing
MAX_FORGET_CONVERSATIONS = 1_000  # conversations per erasure request: one customer's history fits
StoryTitle = Annotated[str, Field(min_length=1), WITHIN_TITLE_CHARS]
StoryText = Annotated[str, WITHIN_STORY_TEXT_CHARS]

StoryStatus = Literal["candidate", "accepted", "rejected", "exported", "done"]


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


class ConversationSummary(BaseModel):
    id: int
    external_id: str
    source: str
    subject: str | None
    state: str | None
    created_at: datetime | None
    messages: int
    url: str | None


class ConversationThemeRef(BaseModel):
    run_id: int
    theme_id: int
    theme: str


class SyncRef(BaseModel):
    """A sync (or file import) of a source, as a conversation names it."""

    id: int
    kind: Literal["sync", "import"]
    status: Literal["running", "succeeded", "failed", "interrupted"] = Field(
        description="interrupted: recorded as running, but its process is gone (killed)"
    )
    started_at: datetime
    finished_at: datetime | None


class ConversationDetail(ConversationSummary):
    created_by_sync: SyncRef | None = Field(
        description="The sync or import that brought the conversation (null: not recorded, written before 0008)."
    )
    changed_by_sync: SyncRef | None = Field(
        description="The sync or import that last changed it (its content, or its deletion); null: not recorded."
    )
    tags: list[str]
    message_list: list[MessageOut]
    themes: list[ConversationThemeRef]


class EntityShare(BaseModel):
    """An entity of a theme's conversations: its type, value and the share of the theme that mentions it."""

    type: str = Field(description="platform, plan, error_code, http_status, integration or feature")
    value: str
    share: float = Field(description="Fraction (0-1) of the theme's conversations that mention it.")


class ThemeSummary(BaseModel):
    id: int
    name: str = Field(description="A person's name for it, else the run's, else \"not recorded for this run\".")
    computed_name: str | None = Field(None, description="The name the run computed (null: not recorded).")
    recorded: bool = True
    size: int
    keywords: list[str]
    entities: list[EntityShare] = Field(default_factory=list, description="Most shared entities, first the most.")
    first_seen: str | None
    last_seen: str | None
    keep_separate: bool = False
    merged_into: int | None = None


class ThemeGroup(BaseModel):
    id: int | None
    name: str
    size: int
    themes: list[ThemeSummary]


class ThemeRef(BaseModel):
    id: int
    name: str
    size: int


class MergedInto(BaseModel):
    id: int
    name: str
    by: str | None
    at: str | None


class ThemeRun(BaseModel):
    run_id: int
    size: int
    name: str
    origin: str


class RelatedArticle(BaseModel):
    """A passage that answered a theme in a run, with its article as the run saw it (title, URL, version)."""

    rank: int
    article_id: int | None
    title: str
    url: str | None
    heading: str | None
    content_hash: str
    similarity: float


class ThemeDetail(BaseModel):
    id: int
    name: str
    computed_name: str | None
    human_name: str | None
    recorded: bool
    description: str | None
    level: int
    scope_id: int
    sources: list[str]
    parent_id: int | None
    parent: str | None
    keywords: list[str]
    size: int
    run_id: int | None
    in_run: bool
    first_seen: datetime | None
    last_seen: datetime | None
    origin: str | None
    story_id: int | None
    story_identity_id: int | None
    keep_separate: bool
    merged_into: MergedInto | None
    children: list[ThemeRef]
    history: list[ThemeRun]
    articles: list[RelatedArticle] = Field(default_factory=list)
    entities: list[EntityShare] = Field(default_factory=list, description="Most shared entities, first the most.")
    mostly: str = Field("", description='Its dominant entities in words, e.g. "mostly iOS, plan Business" ("": none).')


class ThemePatch(RequestBody):
    """Curation of a theme: a person's name (null or "" goes back to the runs' names) and keep-separate."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, max_length=MAX_THEME_NAME_CHARS)
    keep_separate: bool | None = None


class ThemeMerge(RequestBody):
    """Merge this theme into `into` (same scope); later runs put its conversations there."""

    model_config = ConfigDict(extra="forbid")
    into: int = Field(ge=1, le=2**63 - 1)


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
    conversation_id: int | None = Field(description="Null when the conversation was deleted since.")
    conversation_external_id: str
    conversation_url: str | None
    message_id: int | None
    message_position: int
    message_external_id: str | None
    start: int
    end: int
    changed_since: bool = Field(description="The quoted message changed (or went) since the run quoted it.")


class RegressionOut(BaseModel):
    since: str = Field(description="When the theme was flagged recurring after its item was closed.")
    closed_at: str | None
    conversations: int | None = Field(description="Conversations created after the close.")


class TrackerLinkOut(BaseModel):
    tracker: str = Field(description="The tracker's name.")
    kind: str = Field(description="github, jira or linear.")
    key: str | None = Field(description="The item's key in the tracker (issue number, ENG-12, ...).")
    url: str | None
    closed: bool
    closed_at: str | None
    edited_by_person: bool = Field(description="A person edited Threadline's block: updates skip it.")
    updated_at: str
    recurring_after_close: RegressionOut | None = None


class ExportRequest(BaseModel):
    tracker: str = Field(
        min_length=1, max_length=200, description="Name of the tracker (see `threadline trackers list`)."
    )
    link: str | None = Field(
        default=None,
        min_length=1,
        max_length=TRACKER_KEY_CHARS,
        description="Link the story to this existing item instead of creating one (GitHub issue number, Jira key, "
        "Linear identifier); 409 when the story already has an item in that tracker, 404 when the item is missing.",
    )


class ExportOutcomeOut(BaseModel):
    story_id: int
    action: str = Field(
        description="created, found (after an interrupted export), linked (to an existing item), updated, "
        "unchanged, edited, failed"
    )
    key: str | None = None
    url: str | None = None
    error: str | None = None


class ExportOut(BaseModel):
    tracker: str
    created: int
    found: int
    linked: int = 0
    updated: int
    unchanged: int
    edited: int
    failed: int
    merge_comments: int = Field(
        default=0, description="Items of merged-away stories told (once) which item tracks the problem now."
    )
    stories: list[ExportOutcomeOut]


class StoryOut(BaseModel):
    id: int = Field(description="The story's identity: the same across the runs of its scope.")
    run_id: int = Field(description="The run whose snapshot this is.")
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
    score: float
    text_origin: str
    priority: dict[str, Any] = Field(
        default_factory=dict,
        description="The named factors behind rank and severity, as this run computed them: score, severity, "
        "severity_reason, factors (name, value, multiplier, reason), signals, customers_known, "
        "customers_unknown_conversations, companies, plans, evidence_notes (see threadline.stories.priority); "
        "empty for snapshots written before factors were recorded.",
    )
    evidence: list[EvidenceOut]
    trackers: list[TrackerLinkOut] = Field(default_factory=list, description="The story's item in each tracker.")
    articles: list[RelatedArticle] = Field(
        default_factory=list,
        description="Passages of its theme's related articles in its run, best first (in GET /stories/{id} only).",
    )


class StoryRun(BaseModel):
    run_id: int
    rank: int
    conversations: int
    status: str
    title: str | None


class AuditOut(BaseModel):
    at: datetime
    actor: str
    action: str
    subject_type: str
    subject_id: int | None
    details: dict[str, Any]


class StoryHistory(BaseModel):
    id: int
    runs: list[StoryRun]
    history: list[AuditOut]


class StoryPatch(RequestBody):
    """Fields a person may change; text edits are theirs from then on (every snapshot shows them, runs keep them)."""

    model_config = ConfigDict(extra="forbid")
    title: StoryTitle | None = None
    problem: Annotated[StoryText, Field(min_length=1)] | None = None
    user_story: StoryText | None = None
    status: StoryStatus | None = None


class RunStart(RequestBody):
    """A run over `sources` (or the single `source`; neither: every source that exists now) and a period."""

    model_config = ConfigDict(extra="forbid")
    source: str | None = Field(default=None, min_length=1, max_length=SOURCE_NAME_CHARS)
    sources: list[Annotated[str, Field(min_length=1, max_length=SOURCE_NAME_CHARS)]] | None = Field(
        default=None, max_length=MAX_RUN_SOURCES
    )
    since: datetime | None = None
    until: datetime | None = None

    @model_validator(mode="after")
    def _period(self) -> RunStart:
        if self.since is not None and self.until is not None:
            since, until = _aware(self.since), _aware(self.until)
            if since >= until:
                raise ValueError("since must be before until: the period would contain nothing")
        return self


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


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
    scope_id: int | None = None
    sources: list[str] = Field(default_factory=list, description="The scope: the sources the run reads.")
    period_start: datetime | None = Field(None, description="The run's oldest conversation.")
    period_end: datetime | None = Field(None, description="The run's newest conversation.")
    snapshot: bool = Field(True, description="False: the run predates snapshots (names/stories may be not recorded).")
    stop_requested_at: datetime | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None


class RunRefOut(BaseModel):
    id: int
    scope_id: int
    sources: list[str]
    status: str
    period_start: datetime | None
    period_end: datetime | None
    snapshot: bool


class ScopeOut(BaseModel):
    id: int
    sources: list[str]
    runs: int
    latest_run_id: int | None
    latest_succeeded_run_id: int | None


class ChangedTheme(BaseModel):
    id: int
    name: str
    size: int | None = None
    size_before: int | None = None
    rate_per_week: float | None = None
    rate_per_week_before: float | None = None
    change: float | None = Field(None, description="Relative change of the weekly rate (0.5 = +50%).")
    story_id: int | None = None
    merged_into: dict[str, Any] | None = None


class RenamedTheme(BaseModel):
    id: int
    name_before: str | None
    name: str | None
    human_name: str | None


class ChangedStory(BaseModel):
    id: int
    title: str | None
    theme_id: int
    rank: int | None = None
    rank_before: int | None = None
    quotes_added: int | None = None
    quotes_removed: int | None = None


class StoryChanges(BaseModel):
    new: list[ChangedStory]
    dropped: list[ChangedStory]
    evidence_changed: list[ChangedStory]


class Changes(BaseModel):
    run: RunRefOut
    previous_run: RunRefOut | None
    new_themes: list[ChangedTheme]
    returned_themes: list[ChangedTheme]
    growing: list[ChangedTheme]
    shrinking: list[ChangedTheme]
    gone_themes: list[ChangedTheme]
    renamed: list[RenamedTheme]
    stories: StoryChanges
    summary: dict[str, int]


class ForgetConversation(RequestBody):
    model_config = ConfigDict(extra="forbid")
    source: str = Field(min_length=1, max_length=SOURCE_NAME_CHARS)
    external_id: str = Field(min_length=1, max_length=255)


class ForgetRequest(RequestBody):
    """Erase text everywhere, snapshots included: these conversations and/or every conversation of a customer."""

    model_config = ConfigDict(extra="forbid")
    conversations: list[ForgetConversation] = Field(default_factory=list, max_length=MAX_FORGET_CONVERSATIONS)
    customer: str | None = Field(default=None, min_length=1, max_length=320, description="E-mail or external id.")


class ForgetResult(BaseModel):
    conversations: int
    messages: int
    contacts: int
    quotes: int
    story_snapshots: int
    theme_snapshots: int


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
    partial: bool = Field(False, description="The period ends inside this bucket (it is not a full one).")


class RisingTheme(BaseModel):
    theme_id: int
    story_id: int
    title: str
    conversations: int
    direction: str
    counts: list[int]
    bucket_days: int | None = None


class SinceLastRun(BaseModel):
    previous_run: RunRefOut | None
    summary: dict[str, int]
    new_themes: list[ChangedTheme]
    returned_themes: list[ChangedTheme]
    growing: list[ChangedTheme]
    shrinking: list[ChangedTheme]
    gone_themes: list[ChangedTheme]
    stories_evidence_changed: list[ChangedStory]


class Overview(BaseModel):
    conversations: int = Field(description="Conversations of the shown run.")
    volume: list[VolumePoint] = Field(description="The run's conversations per bucket over its period.")
    bucket: Literal["day", "week", "month"]
    rising: list[RisingTheme]
    current_run: RunOut | None
    latest_run_id: int | None = Field(description="The run shown (default: the latest succeeded run).")
    run: RunRefOut | None
    since_last_run: SinceLastRun | None


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


class GapExample(BaseModel):
    """An example conversation: its id and a masked excerpt of a customer message."""

    conversation_id: int
    external_id: str | None
    excerpt: str | None


class DocGap(BaseModel):
    """A theme of mostly how-to questions that no passage of the knowledge base covers."""

    rank: int
    theme_id: int
    theme: str
    conversations: int
    customers: int
    question_share: float
    best_similarity: float | None
    examples: list[GapExample]


class ConfusingArticle(BaseModel):
    """A confusing article: linked, then customers still stuck (`still_stuck`), or a theme it covers did not
    fall after its date (`volume_not_falling`); `reason` says which in plain words."""

    rank: int
    kind: Literal["still_stuck", "volume_not_falling"]
    reason: str
    article_id: int | None
    title: str
    url: str | None
    content_hash: str
    linked_conversations: int | None  # still_stuck only
    stuck_conversations: int | None
    stuck_share: float | None
    customers: int
    theme_id: int | None  # volume_not_falling only: the theme, the article's date, the window and the counts
    theme: str | None
    article_updated_at: str | None
    window_days: int | None
    conversations_before: int | None
    conversations_after: int | None
    share_before: float | None
    share_after: float | None
    examples: list[GapExample]


class Documentation(BaseModel):
    """One run's documentation gaps and confusing articles, ranked by impact (run_id null: no run yet)."""

    run_id: int | None
    gaps: list[DocGap]
    confusing_articles: list[ConfusingArticle]


class KnowledgeSyncOut(BaseModel):
    """One sync of a knowledge source: what it did (`interrupted`: left running by a process that died)."""

    id: int
    job_id: int | None = Field(None, description="The worker job that ran it; null when run by the CLI.")
    status: Literal["running", "succeeded", "failed", "interrupted"]
    started_at: datetime
    finished_at: datetime | None
    counters: dict[str, int] = Field(description="Sync counters (created, changed, removed, passages, ...).")
    error: str | None = Field(None, description="Why the sync failed (never a token; personal data masked).")


class KnowledgeJobOut(BaseModel):
    """The queued or running sync job of a knowledge source."""

    job_id: int
    status: SyncStatus


class KnowledgeSourceOut(BaseModel):
    """A knowledge source with its article counts, last sync and active sync job (null when none)."""

    id: int
    name: str
    kind: str
    created_at: datetime
    articles: int = Field(description="Active articles.")
    removed_articles: int = Field(description="Articles gone from the source (kept for the snapshots that used them).")
    last_sync: KnowledgeSyncOut | None
    job: KnowledgeJobOut | None


class KnowledgeSourceDetail(KnowledgeSourceOut):
    """A knowledge source with its options (names of variables, never secrets) and its latest syncs, newest first."""

    options: dict[str, Any]
    syncs: list[KnowledgeSyncOut]


class KnowledgeSyncQueued(BaseModel):
    """Answer of POST /knowledge/{name}/sync: the source's active sync job; `created` is false when it already existed."""

    knowledge_source_id: int
    name: str
    job_id: int
    created: bool
    status: SyncStatus
