"""The one settings tree: every operational limit and setting, with its unit and reason.

`Settings` is read from the environment once per process (`get_settings()`, cached) and is
never written back to `os.environ`. It has a few general fields and one group per area;
each group is a `BaseSettings` of its own with its own environment prefix:

======================  ==============================  ===========================================
group                   environment                     what
======================  ==============================  ===========================================
(general)               ``THREADLINE_<FIELD>``          data directory, database URL, log level
``database``            ``THREADLINE_DATABASE_<FIELD>`` connection pool and timeouts
``engine``              ``THREADLINE_<FIELD>``          durable runs, retries, dead letters, workers
``input``               ``THREADLINE_INPUT_<FIELD>``    what an imported or synced record may be
``pipeline``            ``THREADLINE_PIPELINE_<FIELD>`` batch sizes and story/evidence sizes
``read``                ``THREADLINE_READ_<FIELD>``     bounds of what a list or page reads
``api``                 ``THREADLINE_API_<FIELD>``      HTTP server, tokens, sessions, request bounds
``intercom``            ``THREADLINE_INTERCOM_<FIELD>`` the Intercom sync
``zendesk``             ``THREADLINE_ZENDESK_<FIELD>``  the Zendesk sync
``llm``                 ``THREADLINE_LLM_<FIELD>``      the optional LLM endpoint and prompt sizes
======================  ==============================  ===========================================

Every field's description reads ``unit: meaning and reason``. `configuration_markdown()`
renders the whole tree as the README's configuration section (``python -m threadline.config``
prints it, ``--write-readme`` rewrites it in place; a test fails when they disagree).

Deliberately *not* settings, and kept as documented module constants where they are used:
algorithm parameters that define a method and must be the same for every dataset
(clustering, hierarchy, naming, conversation-type cues and weights, trend ratios, severity
thresholds, LLM output-token sizes and estimates), versions and identifiers (queue and task
names, cookie and header names, token format), facts of a vendor's protocol (Intercom's page
sizes and API version) and of our own schema (column widths), and page layout (rows per
dashboard page, chart sizes). Changing one of those changes what Threadline computes or
breaks a contract, so it is a code change with a version bump, not a deployment choice.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, PositiveFloat, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from threadline.home import default_home

StructuredMode = Literal["json_schema", "json_object"]


class TaskModels(BaseModel):
    """Model name per task (on Azure: the deployment name)."""

    facets: str = Field(default="gpt-4o-mini", description="model name: per-conversation facets (many small calls)")
    naming: str = Field(default="gpt-4o-mini", description="model name: theme names (one call per new theme)")
    stories: str = Field(default="gpt-4o-mini", description="model name: story text (one call per story)")


class ModelPrice(BaseModel):
    """Price per one million tokens, in the run's currency units."""

    input_per_million: float = Field(ge=0)
    output_per_million: float = Field(ge=0)


class LLMSettings(BaseSettings):
    """An OpenAI-compatible endpoint and the sizes of what is sent to it (``THREADLINE_LLM_*``, nested with ``__``).

    The LLM path is opt-in: it is used only when `base_url` is set *and* the variable named
    by `api_key_env` holds a key (`configured_llm`), so an `OPENAI_API_KEY` exported for
    other tools never starts paid calls by itself. Nothing here reads the key's value until
    a client is built, so settings can be logged and stored safely. A change to a prompt
    size applies to conversations analysed afterwards; cached facets are kept.
    """

    model_config = SettingsConfigDict(env_prefix="THREADLINE_LLM_", env_nested_delimiter="__", extra="ignore")

    base_url: str | None = Field(
        default=None, description="URL: endpoint root ending in `/v1`; unset means offline (no LLM calls)"
    )
    api_key_env: str = Field(
        default="OPENAI_API_KEY",
        description="variable name: the variable holding the key; the key itself is never a setting, so settings can be shown",
    )
    models: TaskModels = Field(default_factory=TaskModels, description="Model (Azure: deployment) per task.")
    requests_per_minute: PositiveFloat = Field(
        default=500.0,
        description="requests per minute: the account's budget; OpenAI tier-1 chat limit, safe for a new account",
    )
    tokens_per_minute: PositiveFloat | None = Field(
        default=200_000.0,
        description="tokens per minute (prompt + completion): OpenAI tier-1 for small models; empty = unlimited",
    )
    timeout_seconds: PositiveFloat = Field(
        default=60.0,
        description="seconds of read timeout per call: structured answers of ~1k tokens finish well within",
    )
    connect_timeout_seconds: PositiveFloat = Field(
        default=10.0, description="seconds for TCP and TLS setup to the endpoint: longer means it is down"
    )
    write_timeout_seconds: PositiveFloat = Field(
        default=30.0, description="seconds to send a prompt: prompts are a few KB; a stalled upload is a dead socket"
    )
    backoff_base_seconds: PositiveFloat = Field(
        default=0.5, description="seconds: the first retry waits up to this (full jitter), doubling per attempt"
    )
    backoff_cap_seconds: PositiveFloat = Field(
        default=30.0, description="seconds: the longest single backoff, so a run keeps moving"
    )
    max_retry_after_seconds: PositiveFloat = Field(
        default=120.0, description="seconds: a Retry-After or rate-limit reset beyond this is capped"
    )
    max_attempts: int = Field(
        default=5, ge=1, le=10, description="calls per item including the first: bounded retries, then dead-letter"
    )
    structured_mode: StructuredMode = Field(
        default="json_schema",
        description="mode: `json_schema` (strict structured outputs) or `json_object` (JSON mode + validation + one repair)",
    )
    prices: dict[str, ModelPrice] = Field(
        default_factory=dict,
        description='JSON price table per model: `{"model": {"input_per_million": 0.15, "output_per_million": 0.6}}`; costs are counted only for listed models',
    )
    run_budget: float | None = Field(
        default=None,
        gt=0,
        description="price-table currency per run: spend limit; the run stops cleanly when reached and can be resumed",
    )
    latency_allowance_s: float = Field(
        default=10.0,
        gt=0,
        description="seconds: the call latency the facet stage keeps enough calls in flight for; slower calls would underuse the request budget",
    )
    min_in_flight: int = Field(
        default=4, ge=1, description="calls in flight at least: even tiny budgets keep a few calls overlapping"
    )
    facets_message_chars: int = Field(
        default=4_000, ge=100, description="characters per message sent for facets: ~1k tokens; longer is pasted logs"
    )
    facets_conversation_chars: int = Field(
        default=16_000,
        ge=100,
        description="characters per conversation sent for facets: ~4k tokens, bounds the cost of one call",
    )
    facets_field_chars: int = Field(
        default=500,
        ge=20,
        description="characters kept per free-text facet (summary, problem, change): summaries, not essays",
    )
    facets_area_chars: int = Field(
        default=60, ge=10, description="characters kept of a product area: a label, not a sentence"
    )
    quotes_per_conversation: int = Field(
        default=5, ge=1, description="quotes kept per conversation: stories cite a few, not a transcript"
    )
    naming_members: int = Field(
        default=12,
        ge=1,
        description="member conversations sent to name a theme: enough to see the pattern, cheap to send",
    )
    naming_contrasts: int = Field(
        default=6,
        ge=0,
        description="conversations of the nearest other themes sent as contrast: the boundary, not the whole corpus",
    )
    naming_field_chars: int = Field(
        default=240, ge=20, description="characters per facet field in a naming prompt: the gist of each member"
    )
    naming_name_chars: int = Field(default=80, ge=10, description="characters kept of a theme name: it is a label")
    naming_text_chars: int = Field(
        default=600, ge=50, description="characters kept of a theme's description and contrast: two sentences"
    )
    stories_evidence: int = Field(
        default=30, ge=1, description="evidence items per story prompt: a story needs a handful; bounds tokens"
    )
    stories_quote_chars: int = Field(
        default=400, ge=20, description="characters per quote in a story prompt: a quote is a sentence or two"
    )
    stories_max_criteria: int = Field(
        default=8, ge=1, description="acceptance criteria kept per story: more is a spec, not a story"
    )
    stories_title_chars: int = Field(
        default=120, ge=20, description="characters kept of a story title: trackers truncate longer titles"
    )

    def api_key(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The key from the named environment variable, or None when unset/empty."""
        env = os.environ if environ is None else environ
        value = env.get(self.api_key_env, "").strip()
        return value or None


def llm_enabled(settings: LLMSettings | None, environ: Mapping[str, str] | None = None) -> bool:
    """True when settings exist *and* their key variable is set (else: offline path)."""
    return settings is not None and settings.api_key(environ) is not None


class DatabaseSettings(BaseSettings):
    """Connections to PostgreSQL (``THREADLINE_DATABASE_<FIELD>``; the URL itself is ``THREADLINE_DATABASE_URL``)."""

    model_config = SettingsConfigDict(env_prefix="THREADLINE_DATABASE_", extra="ignore")

    pool_size: int = Field(
        default=5,
        ge=1,
        description="connections per process: a CLI or worker needs a few; the API's threadpool is rationed to them",
    )
    connect_timeout_s: int = Field(
        default=10, ge=1, description="seconds: fail fast with a clear error instead of hanging on a wrong URL"
    )
    backup_timeout_s: int = Field(
        default=3_600,
        ge=1,
        description="seconds one `db backup` or `db restore` may take: hours of data, not a hang",
    )
    embedded_idle_grace_s: float = Field(
        default=300.0,
        ge=0,
        description="seconds: the embedded server stays up after the last process using it exits, so a series of commands does not pay its start each time; `threadline db stop` stops it at once; 0 stops it with the last process",
    )


class EngineSettings(BaseSettings):
    """Durable runs: batch sizes, retries, dead letters and workers (``THREADLINE_<FIELD>``)."""

    model_config = SettingsConfigDict(env_prefix="THREADLINE_", extra="ignore")

    max_batch_size: int = Field(
        default=1_000,
        ge=1,
        description="conversations per batch job at most: keeps job arguments and per-batch statements small",
    )
    provider_batch_size: int = Field(
        default=64,
        ge=1,
        description="conversations per batch job of a stage that calls a paid provider (facets): a crash or stop loses at most this many calls' worth",
    )
    local_batch_chars: int = Field(
        default=100_000,
        ge=1,
        description="characters of customer text per job of a local-model stage (embed): ~3-5 s of model time on 2 cores, so a crash or stop redoes or waits for seconds; per-job bookkeeping costs the same for 10 short texts as for 1,000",
    )
    model_input_chars: int = Field(
        default=2_000,
        ge=1,
        description="characters of one text counted towards `local_batch_chars`: the model reads at most 256 tokens (~1,000-1,500 characters), so longer texts cost no more",
    )
    max_item_attempts: int = Field(
        default=5,
        ge=1,
        description="attempts per item and stage: transient faults clear within a few tries; past that it is a dead letter",
    )
    max_job_attempts: int = Field(
        default=8,
        ge=1,
        description="attempts per job on unexpected errors (e.g. a database blip): bounded so a broken job cannot loop forever",
    )
    retry_base_delay_s: float = Field(
        default=2.0,
        gt=0,
        description="seconds before the first retry (doubled per attempt, jittered): long enough for a rate-limit window to move, short for a run",
    )
    retry_max_delay_s: float = Field(
        default=300.0, gt=0, description="seconds: exponential backoff is capped at five minutes"
    )
    max_retry_after_s: float = Field(
        default=3_600.0, gt=0, description="seconds: a provider's Retry-After above one hour is treated as one hour"
    )
    max_dead_share: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="share of a run's items: dead-lettered above this, the run ends `failed` instead of `succeeded`; a few bad records are normal, a tenth means a stage or its provider is broken",
    )
    max_error_chars: int = Field(
        default=2_000,
        ge=80,
        description="characters of an error message kept in a dead letter or a run: the cause, not a dump",
    )
    max_sync_error_chars: int = Field(
        default=500,
        ge=80,
        description="characters of the error stored with a source's last sync (shown by the API): a reason, not a traceback",
    )
    worker_concurrency: int = Field(
        default=1,
        ge=1,
        description="jobs a worker process runs at once by default: a second job's Python work competes with the model thread for the GIL (embed ~13% slower at 2, measured); scale with more worker processes",
    )
    max_worker_concurrency: int = Field(
        default=64,
        ge=1,
        description="jobs per worker process at most (`--concurrency`): beyond this, run more processes and machines",
    )
    worker_niceness: int = Field(
        default=10,
        ge=0,
        le=19,
        description="nice level of `threadline worker`: batches are background work; serving and typing stay responsive",
    )
    worker_poll_interval_s: float = Field(
        default=1.0,
        gt=0,
        description="seconds between job polls: bounds the latency of scheduled retries (LISTEN/NOTIFY covers new jobs)",
    )
    heartbeat_interval_s: float = Field(
        default=5.0,
        gt=0,
        description="seconds between worker heartbeats: several fit in the stalled-worker timeout, so one late beat is no takeover",
    )
    stalled_worker_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="seconds without a heartbeat: then a worker counts as dead and its jobs are taken over; 6 missed heartbeats, so a slow one is no takeover",
    )
    maintenance_interval_s: float = Field(
        default=2.0,
        gt=0,
        description="seconds between a worker's sweeps: stalled-job takeover and finishing stopped runs",
    )
    shutdown_grace_s: float = Field(
        default=60.0,
        ge=0,
        description="seconds a stopping worker waits for in-flight jobs before aborting them: a batch takes seconds, an LLM call at most its timeout",
    )
    progress_poll_s: float = Field(
        default=0.5,
        gt=0,
        description="seconds between progress reads by `threadline run`: smooth bars for one cheap query each",
    )


class InputSettings(BaseSettings):
    """What an imported or synced record may be, and how records are written (``THREADLINE_INPUT_<FIELD>``)."""

    model_config = SettingsConfigDict(env_prefix="THREADLINE_INPUT_", extra="ignore")

    max_import_line_bytes: int = Field(
        default=5 * 1024 * 1024,
        ge=1024,
        description="bytes per JSONL line: a conversation bigger than this is an export bug, not a conversation",
    )
    max_message_chars: int = Field(
        default=20_000,
        ge=100,
        description="characters per message: longer texts are pasted logs; kept truncated, with a note on the conversation",
    )
    max_messages_per_conversation: int = Field(
        default=500,
        ge=1,
        description="messages per conversation: Intercom's own part cap; longer threads are rejected, not silently cut",
    )
    max_external_id_chars: int = Field(
        default=255,
        ge=1,
        le=255,
        description="characters per id: ids are keys, not content; at most the 255 of the `external_id` columns",
    )
    max_csv_field_bytes: int = Field(
        default=1024 * 1024,
        ge=128 * 1024,
        description="bytes per CSV cell: raised from csv's 128 KiB default so long messages reach the size check",
    )
    store_batch_size: int = Field(
        default=500,
        ge=1,
        description="conversations per read batch and INSERT statement: keeps statements well under PostgreSQL's 65,535 bind parameters",
    )
    max_ids_per_query: int = Field(
        default=1_000, ge=1, description="external ids per `IN (...)` lookup of a sync: keeps statements small"
    )
    max_csv_record_bytes: int = Field(
        default=2 * 1024 * 1024,
        ge=128 * 1024,
        description="bytes per CSV row (quoted newlines included): bounds what an unclosed quote can swallow before it is reported",
    )
    max_json_depth: int = Field(
        default=64,
        ge=4,
        description="nesting levels in one JSONL record: exports nest a handful; deeper is an attack or a bug",
    )
    max_json_number_chars: int = Field(
        default=100,
        ge=20,
        description="characters of one JSON number: longer is no id, count or time (Python refuses more than 4,300 digits)",
    )
    max_timestamp_chars: int = Field(
        default=64, ge=32, description="characters of an ISO-8601 timestamp: the longest valid form is about 40"
    )
    earliest_timestamp_year: int = Field(
        default=1970,
        description="year (UTC) of the earliest accepted time: earlier times in a support export are bugs (year 1)",
    )
    latest_timestamp_year: int = Field(
        default=2099,
        description="year (UTC) of the latest accepted time: later ones are bugs (milliseconds read as seconds, year 9999)",
    )
    max_problems_per_record: int = Field(
        default=10, ge=1, description="problems reported for one record: enough to fix it, bounded for a garbage line"
    )
    max_reported_problems: int = Field(
        default=10_000,
        ge=100,
        description="problems listed in an import report (duplicates too): more are counted, not listed",
    )
    store_batch_max_chars: int = Field(
        default=4_000_000,
        ge=10_000,
        description="characters of message text per import batch: bounds memory when conversations are long",
    )
    store_batch_attempts: int = Field(
        default=5,
        ge=1,
        description="attempts per import batch: a deadlock or serialization failure of concurrent imports is retried",
    )


class PipelineSettings(BaseSettings):
    """Sizes of the pipeline's work and of what a story holds (``THREADLINE_PIPELINE_<FIELD>``)."""

    model_config = SettingsConfigDict(env_prefix="THREADLINE_PIPELINE_", extra="ignore")

    embed_batch_size: int = Field(
        default=64, ge=1, description="texts per model call: fills the CPU's vector units without large padding waste"
    )
    embed_input_max_chars: int = Field(
        default=4_000,
        ge=100,
        description="characters of customer text embedded per conversation: MiniLM reads 256 tokens, more only costs time (part of the input hash, so a change re-embeds)",
    )
    min_story_conversations: int = Field(
        default=5, ge=1, description="conversations: a theme smaller than this is an anecdote, not a backlog item"
    )
    evidence_quotes_per_story: int = Field(
        default=5, ge=1, description="quotes per story: enough to show the range of a problem, few enough to read"
    )
    min_evidence_quotes: int = Field(
        default=3,
        ge=1,
        description="quotes: a story with fewer still appears and says its evidence is thin (no theme loses its story silently)",
    )
    max_quote_chars: int = Field(
        default=280, ge=40, description="characters per quote: a quote is a sentence or two, not the whole message"
    )
    evidence_candidates: int = Field(
        default=40,
        ge=1,
        description="conversations of a theme's core (most typical first) searched for quotes: enough variety, bounded work",
    )
    trend_max_buckets: int = Field(
        default=26, ge=2, description="points in a story's trend series: a half-year of weeks, readable as a sparkline"
    )
    description_quote_chars: int = Field(
        default=200,
        ge=20,
        description="characters of the representative message quoted in an offline theme description: a sentence, enough to recognise the problem",
    )

    @model_validator(mode="after")
    def _quotes_consistent(self) -> PipelineSettings:
        if self.min_evidence_quotes > self.evidence_quotes_per_story:
            raise ValueError("min_evidence_quotes must not exceed evidence_quotes_per_story: no story could be written")
        return self


class ReadSettings(BaseSettings):
    """Bounds of what one list, page or search reads, for the CLI, the API and the dashboard (``THREADLINE_READ_<FIELD>``)."""

    model_config = SettingsConfigDict(env_prefix="THREADLINE_READ_", extra="ignore")

    max_list_limit: int = Field(
        default=1_000,
        ge=1,
        description="rows per list call: bounded so no list command or endpoint can dump a whole table",
    )
    max_trend_buckets: int = Field(
        default=104, ge=2, description="points per trend series read: two years of weeks; older points are dropped"
    )
    max_context_messages: int = Field(
        default=200,
        ge=1,
        description="messages shown around a story's evidence: a long thread is cut, the quoted message always kept",
    )
    max_query_chars: int = Field(
        default=200, ge=1, description="characters of a search query: a few words, not a document"
    )
    max_conversation_themes: int = Field(
        default=50, ge=1, description="theme memberships shown per conversation: the recent runs"
    )
    rising_candidates: int = Field(
        default=200,
        ge=1,
        description="best-scored stories searched for rising ones on the overview: more than a run has themes worth showing",
    )


class ApiSettings(BaseSettings):
    """`threadline serve`: the HTTP server, tokens, sessions and request bounds (``THREADLINE_API_<FIELD>``)."""

    model_config = SettingsConfigDict(env_prefix="THREADLINE_API_", extra="ignore")

    host: str = Field(
        default="127.0.0.1",
        description="interface: loopback by default, so exposing the server is an explicit decision (`--host`)",
    )
    port: int = Field(default=8000, ge=0, le=65535, description="TCP port: uvicorn's customary default (`--port`)")
    max_server_workers: int = Field(
        default=32,
        ge=1,
        description="processes per `serve --workers`: beyond the cores of any machine this runs on; each holds its own pool",
    )
    max_offset: int = Field(
        default=1_000_000,
        ge=0,
        description="rows skipped by a list request: deeper offsets cost a scan each; narrow the filter instead",
    )
    token_cache_ttl_s: float = Field(
        default=5.0,
        ge=0,
        description="seconds a verified token is trusted without a lookup: the longest a revocation made in another process takes to reach a running server",
    )
    max_cached_tokens: int = Field(
        default=1_000,
        ge=1,
        description="tokens per cache: far more than an installation has; only valid tokens are cached",
    )
    token_last_used_resolution_s: float = Field(
        default=60.0, ge=0, description="seconds: a token's last use is written at most this often, not per request"
    )
    session_max_age_s: int = Field(
        default=12 * 3600, ge=60, description="seconds of a dashboard session: a working day, then sign in again"
    )
    login_csrf_max_age_s: int = Field(
        default=15 * 60,
        ge=60,
        description="seconds a sign-in form stays valid: time to fill it in, short so a stale form is refused",
    )
    max_title_chars: int = Field(
        default=300, ge=1, description="characters of an edited story title: a line, not a paragraph"
    )
    max_story_text_chars: int = Field(
        default=20_000, ge=1, description="characters of an edited story problem or user story: as long as one message"
    )
    max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="bytes of a request body: the largest real body (a story edit, an erasure list of 1,000 "
        "conversations) is well under; larger ones get 413 before they are read or any token is checked",
    )
    auth_failure_burst: int = Field(
        default=20,
        ge=1,
        description="requests with failed authentication a client address may make at once before 429: mistyped "
        "tokens and a script's retries fit, guessing does not",
    )
    auth_failures_per_minute: float = Field(
        default=30.0,
        gt=0,
        description="requests per minute with failed authentication a client address regains: one guess every two "
        "seconds on average",
    )
    max_throttled_clients: int = Field(
        default=10_000,
        ge=1,
        description="rows (client addresses) kept by the failed-authentication throttle: bounded memory; beyond it "
        "the oldest are forgotten",
    )


class IntercomSettings(BaseSettings):
    """The Intercom sync (``THREADLINE_INTERCOM_<FIELD>``); the token's variable is named per source (`--token-env`)."""

    model_config = SettingsConfigDict(env_prefix="THREADLINE_INTERCOM_", extra="ignore")

    overlap_s: int = Field(
        default=600,
        ge=0,
        description="seconds re-read before the watermark: Intercom's search index lags updates by minutes",
    )
    max_outstanding_fetches: int = Field(
        default=150,
        ge=1,
        description="detail fetches not yet finished before the next search page is read: one page keeps the pacer busy",
    )
    max_pages_in_flight: int = Field(
        default=20, ge=1, description="search pages not yet committed: bounds how far the watermark may lag the fetches"
    )
    max_catchup_passes: int = Field(
        default=3,
        ge=0,
        description="extra passes for conversations updated during a sync: bounded so a busy workspace cannot keep one sync alive forever",
    )
    commit_chunk_size: int = Field(
        default=25,
        ge=1,
        description="conversations per transaction within a page: bounds the work an interruption loses",
    )
    max_concurrent_requests: int = Field(
        default=16,
        ge=1,
        description="requests in flight per sync: enough to fill a 10 s window at loopback latency; the pacer bounds the rate",
    )
    connect_timeout_s: float = Field(
        default=10.0, gt=0, description="seconds for TCP and TLS setup: Intercom's edge answers well below this"
    )
    read_timeout_s: float = Field(
        default=60.0, gt=0, description="seconds for one response: large conversations (500 parts) take a few seconds"
    )
    write_timeout_s: float = Field(
        default=30.0, gt=0, description="seconds to send a request: bodies are tiny; this only catches stalled sockets"
    )
    pool_timeout_s: float = Field(
        default=60.0, gt=0, description="seconds waiting for a free connection: every concurrent request may be busy"
    )
    max_attempts: int = Field(
        default=6,
        ge=1,
        description="attempts per request, the first included: 5% of 500s fail 6 times in a row ~1.6e-8 of the time",
    )
    backoff_base_s: float = Field(
        default=0.5,
        gt=0,
        description="seconds: the first 5xx or transport retry waits up to this (full jitter), doubling",
    )
    backoff_cap_s: float = Field(default=8.0, gt=0, description="seconds: no single backoff waits longer than this")
    max_merge_hops: int = Field(
        default=3,
        ge=0,
        description="attempts per contact to follow a 410 (merged) redirect: merges chain rarely, loops must end",
    )


class ZendeskSettings(BaseSettings):
    """The Zendesk sync (``THREADLINE_ZENDESK_<FIELD>``); credentials' variables are named per source (`--token-env`)."""

    model_config = SettingsConfigDict(env_prefix="THREADLINE_ZENDESK_", extra="ignore")

    export_page_size: int = Field(
        default=1000,
        ge=1,
        le=1000,
        description="tickets per incremental export page: Zendesk's maximum, so the 10 requests/minute export limit never binds",
    )
    comments_page_size: int = Field(
        default=100,
        ge=1,
        le=100,
        description="messages (ticket comments) per page: the maximum of Zendesk's cursor pagination",
    )
    window_s: float = Field(
        default=60.0,
        gt=0,
        description="seconds: the window of the account's request budget (Zendesk: per minute); the pacer learns shorter ones from `ratelimit-reset`",
    )
    export_requests_per_minute: int = Field(
        default=10,
        ge=1,
        description="requests per minute to the incremental export: Zendesk's documented limit (30 with the High Volume add-on)",
    )
    export_window_s: float = Field(
        default=60.0,
        gt=0,
        description="seconds: the window of the export limit (Zendesk: one minute; tests scale it down)",
    )
    max_outstanding_fetches: int = Field(
        default=200,
        ge=1,
        description="ticket comment fetches not yet finished before the next export page is read: keeps the pacer busy across pages",
    )
    max_pages_in_flight: int = Field(
        default=3,
        ge=1,
        description="export pages not yet committed: bounds how far the cursor may lag the fetches (a page is up to 1000 tickets)",
    )
    commit_chunk_size: int = Field(
        default=50,
        ge=1,
        description="conversations (tickets) per transaction within a page: bounds the work an interruption loses",
    )
    max_concurrent_requests: int = Field(
        default=16,
        ge=1,
        description="requests in flight per sync: fills a 700/minute budget at internet latency; the pacer bounds the rate",
    )
    connect_timeout_s: float = Field(
        default=10.0, gt=0, description="seconds for TCP and TLS setup: Zendesk's edge answers well below this"
    )
    read_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="seconds for one response: an export page of 1000 tickets with side-loads takes seconds to render",
    )
    write_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="seconds to send a request: bodies are empty GETs; this only catches stalled sockets",
    )
    pool_timeout_s: float = Field(
        default=60.0, gt=0, description="seconds waiting for a free connection: every concurrent request may be busy"
    )
    max_attempts: int = Field(
        default=6,
        ge=1,
        description="attempts per request, the first included: 5% of 5xx fail 6 times in a row ~1.6e-8 of the time",
    )
    backoff_base_s: float = Field(
        default=0.5,
        gt=0,
        description="seconds: the first 5xx or transport retry waits up to this (full jitter), doubling",
    )
    backoff_cap_s: float = Field(default=8.0, gt=0, description="seconds: no single backoff waits longer than this")
    max_retry_after_s: float = Field(
        default=120.0,
        gt=0,
        description="seconds: longest Retry-After honoured; Zendesk's per-minute windows ask for at most 60",
    )


EmbeddingBackendName = Literal["auto", "onnx-int8", "torch"]


class EmbeddingSettings(BaseSettings):
    """Which embedding backend computes vectors, and how (``THREADLINE_EMBEDDING_<FIELD>``)."""

    model_config = SettingsConfigDict(env_prefix="THREADLINE_EMBEDDING_", extra="ignore")

    backend: EmbeddingBackendName = Field(
        default="auto",
        description=(
            "backend name: `auto` uses ONNX Runtime int8 (3.0-3.3x faster than torch on 2 cores, cosine >= min_cosine "
            "to torch) when it is installed and passes its check, else torch fp32 with a logged warning; `onnx-int8` or "
            "`torch` forces one (a run keeps the backend chosen when it was created)"
        ),
    )
    min_cosine: float = Field(
        default=0.98,
        ge=-1.0,
        le=1.01,
        description=(
            "cosine: lowest per-sentence similarity of ONNX to torch vectors on the fixed check set before ONNX is used; "
            "at 0.98 int8 vectors cluster like fp32 ones, a broken build lands far below"
        ),
    )
    sessions: int = Field(
        default=0,
        ge=0,
        description=(
            "sessions: ONNX Runtime sessions that run a call's batches side by side; 0 means one per available core, "
            "at most 4, the cores dealt out among them (6 cores: threads 2, 2, 1, 1). Each holds its own weights and "
            "buffers: ~0.1 GiB on short texts, up to ~1 GiB while it runs a batch of 256-token texts, so 1 halves the "
            "peak of long texts and costs ~10% of the speed"
        ),
    )
    intra_op_threads: int = Field(
        default=0,
        ge=0,
        description=(
            "threads: ONNX Runtime intra-op threads per session; 0 means the cores dealt out among the sessions. "
            "Set alone, one session of that many threads (e.g. 1 keeps embedding to one core)"
        ),
    )
    allow_spinning: bool = Field(
        default=False,
        description=(
            "flag: let ONNX Runtime's idle threads busy-wait between ops; off because on shared cores the spinning "
            "threads steal the CPU the work needs (measured 2.2 s without against 3.8 s with, under load)"
        ),
    )


class InsightSettings(BaseSettings):
    """What offline insight shows and weighs (``THREADLINE_INSIGHT_<FIELD>``, JSON for maps)."""

    model_config = SettingsConfigDict(env_prefix="THREADLINE_INSIGHT_", extra="ignore")

    mask_personal_data: bool = Field(
        default=True,
        description="switch: mask e-mails, phones, card/IBAN/account numbers, PINs, codes, passwords, API keys and "
        "street addresses in everything Threadline writes, shows or sends (stored text stays verbatim); off only for "
        "debugging on data that holds none",
    )
    plan_weights: dict[str, float] = Field(
        default_factory=dict,
        description='customer value per plan name, e.g. {"Enterprise": 3, "Team": 1} (unitless weights, compared '
        "with the run's mean); empty: plans are shown but carry no weight in the rank",
    )
    value_attribute: str | None = Field(
        default=None,
        description="attribute name: a numeric customer attribute (e.g. seats, mrr) whose mean, relative to the "
        "run's mean, weighs a story's rank; unset: no attribute is used",
    )


class TrackerSettings(BaseSettings):
    """Exports to trackers (``THREADLINE_TRACKERS_<FIELD>``); tokens' variables are named per tracker (`--token-env`)."""

    model_config = SettingsConfigDict(env_prefix="THREADLINE_TRACKERS_", extra="ignore")

    public_url: str | None = Field(
        default=None,
        description="URL: the dashboard as the team reaches it (https://threadline.example.com); items link back to the story there, unset means no link",
    )

    connect_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="seconds for TCP and TLS setup: GitHub, Atlassian and Linear answer well below this",
    )
    read_timeout_s: float = Field(
        default=30.0, gt=0, description="seconds for one response: a search or an issue write takes well under a second"
    )
    write_timeout_s: float = Field(
        default=30.0, gt=0, description="seconds to send a request: bodies are a few kilobytes; catches stalled sockets"
    )
    pool_timeout_s: float = Field(
        default=60.0, gt=0, description="seconds waiting for a free connection: every concurrent export may be busy"
    )
    max_attempts: int = Field(
        default=8,
        ge=1,
        description="attempts per request, the first included: a secondary-limit wait or a 5xx rarely repeats 8 times",
    )
    backoff_base_s: float = Field(
        default=0.5,
        gt=0,
        description="seconds: the first 5xx or transport retry waits up to this (full jitter), doubling",
    )
    backoff_cap_s: float = Field(default=8.0, gt=0, description="seconds: no single backoff waits longer than this")
    max_retry_after_s: float = Field(
        default=120.0,
        gt=0,
        description="seconds: longest Retry-After or rate-limit reset honoured; GitHub's secondary limit asks for ~60",
    )
    max_concurrent_exports: int = Field(
        default=4,
        ge=1,
        description="stories exported at once by one process: trackers limit concurrent writes (GitHub: serialise creates)",
    )
    github_creates_per_minute: int = Field(
        default=80,
        ge=1,
        description="content-creating requests (issues, comments) per minute window: GitHub's documented secondary limit",
    )
    github_creates_per_hour: int = Field(
        default=500,
        ge=1,
        description="content-creating requests per hour window: GitHub's documented secondary limit",
    )
    github_create_minute_s: float = Field(
        default=60.0,
        gt=0,
        description="seconds: the window of `github_creates_per_minute` (GitHub: a minute; tests and benchmarks scale it)",
    )
    github_create_hour_s: float = Field(
        default=3600.0,
        gt=0,
        description="seconds: the window of `github_creates_per_hour` (GitHub: an hour; tests and benchmarks scale it)",
    )
    search_fallback_pages: int = Field(
        default=10,
        ge=0,
        description="pages of 100 issues: the newest issues read when GitHub's search finds no marker (its index lags writes)",
    )
    max_evidence_quotes: int = Field(
        default=8, ge=1, description="quotes in a tracker item: the strongest evidence, not the whole theme"
    )
    max_quote_chars: int = Field(
        default=500, ge=40, description="characters of one quote in a tracker item: longer quotes are cut at a word"
    )
    regression_min_conversations: int = Field(
        default=3,
        ge=1,
        description="conversations: created after an item was closed, that many flag its theme 'recurring after close'",
    )
    comment_on_regression: bool = Field(
        default=True, description="flag: comment on the tracker item when its closed theme recurs"
    )


class NotifySettings(BaseSettings):
    """Digests after each run to webhooks and Slack (``THREADLINE_NOTIFY_<FIELD>``); URLs and secrets are named per channel."""

    model_config = SettingsConfigDict(env_prefix="THREADLINE_NOTIFY_", extra="ignore")

    growth_rate: float = Field(
        default=0.5,
        gt=0,
        description="share: a theme grew past this since the scope's previous run (0.5 = +50%) to be called growing",
    )
    min_growth_conversations: int = Field(
        default=3,
        ge=1,
        description="conversations: a theme must also gain this many to be called growing (2 -> 3 is no trend)",
    )
    max_items_per_section: int = Field(
        default=10,
        ge=1,
        description="problems: themes listed per section of a digest, the largest first; the total says how many more",
    )
    max_name_chars: int = Field(
        default=150, ge=20, description="characters: of a theme name in a digest; Slack's header limit is 150"
    )
    connect_timeout_s: float = Field(
        default=10.0, gt=0, description="seconds: for TCP and TLS setup to a receiver; webhooks answer well below this"
    )
    read_timeout_s: float = Field(
        default=30.0, gt=0, description="seconds: for the receiver's answer; Slack answers in well under a second"
    )
    max_attempts: int = Field(
        default=5, ge=1, description="attempts: per delivery, the first included; then the digest is a dead letter"
    )
    backoff_base_s: float = Field(
        default=0.5, gt=0, description="seconds: the first retry waits up to this (full jitter), doubling"
    )
    backoff_cap_s: float = Field(default=8.0, gt=0, description="seconds: no single backoff waits longer than this")
    max_retry_after_s: float = Field(
        default=120.0, gt=0, description="seconds: longest Retry-After honoured (Slack asks for ~30-60 when limited)"
    )


class KnowledgeSettings(BaseSettings):
    """Knowledge sources: folders, crawled documentation sites, help centers (``THREADLINE_KNOWLEDGE_<FIELD>``)."""

    model_config = SettingsConfigDict(env_prefix="THREADLINE_KNOWLEDGE_", extra="ignore")

    max_passage_chars: int = Field(
        default=1500,
        ge=100,
        description="characters of one passage: a long section is cut at paragraphs; the embedding model reads "
        "~256 tokens (~1,000-1,500 characters) and ignores the rest",
    )
    articles_per_commit: int = Field(
        default=25,
        ge=1,
        description="articles per transaction (and per embedding batch): bounds memory and the work an "
        "interruption loses",
    )
    max_page_bytes: int = Field(
        default=2_000_000,
        ge=1_000,
        description="bytes of one page or file: larger ones are skipped with a reason (documentation pages are "
        "well under 1 MB; a bigger one is a dump, not an article)",
    )
    max_pages: int = Field(
        default=2000,
        ge=1,
        description="pages fetched per crawl (and files per folder): a runaway site cannot keep one sync alive "
        "forever; removals are only concluded from a crawl that stayed under it",
    )
    max_depth: int = Field(
        default=3,
        ge=0,
        description="links followed from a start URL or a sitemap entry: documentation is reachable in a few clicks",
    )
    requests_per_second: float = Field(
        default=2.0,
        gt=0,
        description="requests per second to one documentation site: polite to a server we do not own",
    )
    max_redirects: int = Field(
        default=5, ge=0, description="redirects followed per page: more is a loop, skipped with a reason"
    )
    max_attempts: int = Field(
        default=3,
        ge=1,
        description="attempts per page, the first included: a page still failing goes to dead letters and is "
        "retried next sync",
    )
    backoff_base_s: float = Field(
        default=0.5,
        gt=0,
        description="seconds: the first retry of a failing page waits up to this (full jitter), doubling",
    )
    backoff_cap_s: float = Field(default=8.0, gt=0, description="seconds: no single retry of a page waits longer")
    connect_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="seconds for TCP and TLS setup of one request: a documentation host answers well below",
    )
    read_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="seconds between bytes of one response: catches a stalled server, not a slow page",
    )
    page_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="seconds for one page from request to last byte: a server trickling bytes cannot stall the crawl",
    )
    user_agent: str = Field(
        default="Threadline-knowledge/0.1 (+https://github.com/threadline)",
        description="User-Agent header: the crawler's name, also what robots.txt rules are matched against",
    )
    coverage_threshold: float = Field(
        default=0.6,
        ge=-1.0,
        le=1.0,
        description="cosine similarity: a passage at least this close to a theme's centroid covers it "
        "(all-MiniLM-L6-v2: paraphrases score above ~0.6, same-topic text ~0.4-0.6; covering means answering, "
        "so the bound is the paraphrase level: an article on the same area that does not explain the task is no answer)",
    )
    coverage_margin: float = Field(
        default=0.05,
        ge=0.0,
        le=2.0,
        description="cosine similarity: a passage covers only themes within this of the theme it is closest to "
        "(its own subject); a passage on a neighbouring task of the same area is closer to its own theme by ~0.1 "
        "and answers nothing else, while one problem split into two themes puts both within a few hundredths",
    )
    coverage_top_passages: int = Field(
        default=3, ge=1, description="passages listed per theme: the best answers, not every related paragraph"
    )
    gap_question_share: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="share of a theme's conversations: questions/how-to at least this share make an uncovered theme "
        "a documentation gap",
    )
    confusing_min_conversations: int = Field(
        default=2,
        ge=1,
        description="conversations: an article is confusing only when at least this many customers came back stuck "
        "after it was linked (one stuck customer is an anecdote, not a pattern)",
    )
    confusing_min_share: float = Field(
        default=0.25,
        ge=0.0,
        le=1.0,
        description="share of the conversations that link an article: at least this share ending with the customer "
        "still stuck makes the article confusing (a widely linked article that helps most readers is not)",
    )
    coverage_examples: int = Field(
        default=3,
        ge=1,
        description="conversations: examples kept per documentation gap and confusing article in a run's snapshot, "
        "evidence to read, not the full list",
    )
    entity_terms: list[str] = Field(
        default_factory=list,
        description='terms: product areas and features to find in conversations as entities, e.g. ["SSO", "bulk export"] '
        "(JSON list); added to the knowledge base's article titles and headings; empty: those alone",
    )


class Settings(BaseSettings):
    """Runtime configuration: the general fields map to ``THREADLINE_<FIELD>``, each group has its own prefix."""

    model_config = SettingsConfigDict(env_prefix="THREADLINE_", extra="ignore")

    home: Path = Field(
        default_factory=default_home,
        description="path: data directory (embedded database in `pgdata/`, session secret); one per installation",
        json_schema_extra={"shown_default": "`$XDG_DATA_HOME/threadline` or `~/.local/share/threadline`"},
    )
    database_url: str | None = Field(
        default=None,
        description="URL: PostgreSQL >= 15 with pgvector, e.g. `postgresql://user:pw@host/db`; unset means the embedded server under `home`",
        json_schema_extra={"secret": True},
    )
    log_level: str = Field(
        default="WARNING",
        description="logging level: of the library's loggers (to stderr); WARNING keeps the terminal for results",
    )
    cli_warm_idle_s: float = Field(
        default=600.0,
        ge=0,
        description="seconds: after a read command (status, themes, stories, runs list, ...) a warm process with the CLI's libraries imported answers the next ones at once, and exits after this long without a command; 0 never starts one",
    )

    database: DatabaseSettings = Field(default_factory=DatabaseSettings, description="Connections to PostgreSQL.")
    engine: EngineSettings = Field(default_factory=EngineSettings, description="Durable runs and workers.")
    input: InputSettings = Field(default_factory=InputSettings, description="Imported and synced records.")
    pipeline: PipelineSettings = Field(default_factory=PipelineSettings, description="Pipeline work and stories.")
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings, description="Embedding backend.")
    read: ReadSettings = Field(default_factory=ReadSettings, description="Lists, pages and searches.")
    api: ApiSettings = Field(default_factory=ApiSettings, description="HTTP API and dashboard.")
    intercom: IntercomSettings = Field(default_factory=IntercomSettings, description="Intercom sync.")
    zendesk: ZendeskSettings = Field(default_factory=ZendeskSettings, description="Zendesk sync.")
    trackers: TrackerSettings = Field(default_factory=TrackerSettings, description="Exports to trackers.")
    notify: NotifySettings = Field(
        default_factory=NotifySettings, description="Digests after each run to webhooks and Slack."
    )
    knowledge: KnowledgeSettings = Field(
        default_factory=KnowledgeSettings, description="Knowledge sources: folders, documentation sites, help centers."
    )
    llm: LLMSettings = Field(default_factory=LLMSettings, description="The optional LLM endpoint.")
    insight: InsightSettings = Field(
        default_factory=InsightSettings, description="Masking and the customer-value factors of offline insight."
    )

    @property
    def models_dir(self) -> Path:
        """Where locally built models (the ONNX int8 embedding model) are cached."""
        return self.home / "models"

    @property
    def embedded_pgdata(self) -> Path:
        """Where the embedded server keeps its cluster."""
        return self.home / "pgdata"

    def configured_llm(self) -> LLMSettings | None:
        """The LLM settings when an endpoint and its key are configured, else None (offline)."""
        return self.llm if self.llm.base_url and llm_enabled(self.llm) else None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings for this process, read from the environment once (tests clear the cache)."""
    return Settings()


# --- The README's configuration section, generated from the tree -------------------------

README_BEGIN = (
    "<!-- configuration:begin (generated by `python -m threadline.config --write-readme`; edit config.py, not this) -->"
)
README_END = "<!-- configuration:end -->"
WRITE_README_COMMAND = "python -m threadline.config --write-readme"


def setting_groups() -> Iterator[tuple[str, type[BaseSettings], str]]:
    """(title, settings class, one-line summary) of the general fields and of each group, in tree order."""
    yield "general", Settings, "Where Threadline keeps its data and what it logs"
    for name, info in Settings.model_fields.items():
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseSettings):
            yield name, info.annotation, (info.description or "").rstrip(".")


def _shown_default(info: FieldInfo) -> str:
    """The default as the README shows it: code-quoted as typed in the environment, `unset` for none."""
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    if "shown_default" in extra:
        return str(extra["shown_default"])
    value = info.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    return f"`{value}`"


def _leaves(cls: type[BaseModel], env_prefix: str, delimiter: str) -> Iterator[tuple[str, FieldInfo]]:
    """(environment variable, field) of every leaf field; nested plain models are expanded with `delimiter`."""
    for name, info in cls.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseSettings):
            continue  # a group of its own
        variable = f"{env_prefix}{name}".upper()
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _leaves(annotation, f"{variable}{delimiter}", delimiter)
        else:
            yield variable, info


def setting_fields() -> Iterator[tuple[str, str, FieldInfo]]:
    """(group, environment variable, field) of every leaf setting in the tree."""
    for group, cls, _ in setting_groups():
        config = cls.model_config
        yield from (
            (group, variable, info)
            for variable, info in _leaves(cls, config.get("env_prefix", ""), config.get("env_nested_delimiter") or "__")
        )


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def configuration_markdown() -> str:
    """Every setting of every group as Markdown tables: variable, default, and "unit: meaning and reason".

    Rendered from the field definitions only, never from the environment, so a secret
    that is set (a database URL with a password, an API key) can never appear: a secret
    field shows its variable and no value, and keys are settings only by variable *name*.
    """
    lines: list[str] = []
    fields = list(setting_fields())
    for group, _, summary in setting_groups():
        lines += [
            f"### `{group}`: {summary}",
            "",
            "| variable | default | unit: meaning and reason |",
            "|---|---|---|",
        ]
        for field_group, variable, info in fields:
            if field_group != group:
                continue
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            default = "unset (secret: never shown)" if extra.get("secret") else _shown_default(info)
            lines.append(f"| `{variable}` | {_cell(default)} | {_cell(info.description or '')} |")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def readme_section(readme: str) -> str | None:
    """The text between the README's configuration markers (without them), or None when they are missing."""
    begin, end = readme.find(README_BEGIN), readme.find(README_END)
    if begin < 0 or end < begin:
        return None
    return readme[begin + len(README_BEGIN) : end].strip("\n") + "\n"


def with_configuration(readme: str) -> str:
    """`readme` with the text between its configuration markers replaced by `configuration_markdown()`."""
    begin, end = readme.find(README_BEGIN), readme.find(README_END)
    if begin < 0 or end < begin:
        raise ValueError(f"the README has no {README_BEGIN!r} ... {README_END!r} section")
    return readme[: begin + len(README_BEGIN)] + "\n" + configuration_markdown() + readme[end:]


def default_readme() -> Path:
    """The repository's README.md (for a source checkout)."""
    return Path(__file__).resolve().parents[2] / "README.md"


def main(argv: Sequence[str] | None = None) -> int:
    """Print the configuration tables, or rewrite the README's section in place (`--write-readme`)."""
    parser = argparse.ArgumentParser(prog="python -m threadline.config", description=main.__doc__)
    parser.add_argument("--write-readme", action="store_true", help="rewrite the README's configuration section")
    parser.add_argument("--readme", type=Path, default=None, help="README to rewrite (default: the checkout's)")
    args = parser.parse_args(argv)
    if not args.write_readme:
        sys.stdout.write(configuration_markdown())
        return 0
    path: Path = args.readme or default_readme()
    text = path.read_text(encoding="utf-8")
    updated = with_configuration(text)
    if updated != text:
        path.write_text(updated, encoding="utf-8")
    sys.stdout.write(f"{path}: configuration section {'rewritten' if updated != text else 'already current'}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
