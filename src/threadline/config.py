"""Settings read from the environment (prefix ``THREADLINE_``) and the limits every stage obeys.

Limits are module constants with a unit and a reason so that a reviewer can see, in one
place, why a record was rejected or a batch has the size it has.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, PositiveFloat
from pydantic_settings import BaseSettings, SettingsConfigDict

# --- Input limits ---------------------------------------------------------------------
MAX_IMPORT_LINE_BYTES = (
    5 * 1024 * 1024
)  # bytes per JSONL line: a conversation bigger than this is an export bug, not a conversation
MAX_MESSAGE_CHARS = 20_000  # characters per message: longer texts are pasted logs; kept truncated with a note
MAX_MESSAGES_PER_CONVERSATION = 500  # messages: Intercom's own part cap; longer threads are rejected, not silently cut
MAX_EXTERNAL_ID_CHARS = 255  # characters: ids are keys, not content
MAX_CSV_FIELD_BYTES = (
    1024 * 1024
)  # bytes per CSV cell: raised from csv's 128 KiB default so long messages reach the size check

# --- Pipeline sizes -------------------------------------------------------------------
EMBED_BATCH_SIZE = 64  # texts per model call: fills the CPU's vector units without large padding waste
EMBED_INPUT_MAX_CHARS = 4_000  # characters of customer text embedded: MiniLM reads 256 tokens, more only costs time
STORE_BATCH_SIZE = 500  # rows per INSERT statement: keeps statements well under PostgreSQL's 65,535 bind parameters
MIN_STORY_CONVERSATIONS = 5  # conversations: a theme smaller than this is an anecdote, not a backlog item
EVIDENCE_QUOTES_PER_STORY = 5  # quotes: enough to show the range of a problem, few enough to read
MIN_EVIDENCE_QUOTES = 3  # quotes: a story with fewer is not evidence-backed; the skeleton's promise
MAX_QUOTE_CHARS = 280  # characters: a quote is a sentence or two, not the whole message

# --- Listing bounds -------------------------------------------------------------------
MAX_LIST_LIMIT = 1000  # rows per list call: bounded so no list command or endpoint can dump a whole table


def default_home() -> Path:
    """XDG data directory for Threadline (``$XDG_DATA_HOME/threadline`` or ``~/.local/share/threadline``)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "threadline"


StructuredMode = Literal["json_schema", "json_object"]


class TaskModels(BaseModel):
    """Model name per task (on Azure: the deployment name)."""

    facets: str = "gpt-4o-mini"
    naming: str = "gpt-4o-mini"
    stories: str = "gpt-4o-mini"
    embeddings: str = "text-embedding-3-small"


class ModelPrice(BaseModel):
    """Price per one million tokens, in the run's currency units."""

    input_per_million: float = Field(ge=0)
    output_per_million: float = Field(ge=0)


class LLMSettings(BaseSettings):
    """An OpenAI-compatible endpoint (``THREADLINE_LLM_*``, nested fields with ``__``).

    The LLM path is opt-in: it is used only when `base_url` is set *and* the variable named
    by `api_key_env` holds a key (`configured_llm`), so an `OPENAI_API_KEY` exported for
    other tools never starts paid calls by itself. Nothing here reads the key's value until
    a client is built, so settings can be logged and stored safely.
    """

    model_config = SettingsConfigDict(env_prefix="THREADLINE_LLM_", env_nested_delimiter="__", extra="ignore")

    base_url: str | None = Field(default=None, description="Endpoint root ending in `/v1`; unset means offline.")
    api_key_env: str = Field(default="OPENAI_API_KEY", description="*Name* of the variable holding the key.")
    models: TaskModels = Field(default_factory=TaskModels, description="Model (Azure: deployment) per task.")
    requests_per_minute: PositiveFloat = Field(
        default=500.0,
        description="Requests per minute of the account: OpenAI tier-1 chat limit, safe for a new account.",
    )
    tokens_per_minute: PositiveFloat | None = Field(
        default=200_000.0,
        description="Tokens per minute (prompt + completion): OpenAI tier-1 for small models; empty = unlimited.",
    )
    timeout_seconds: PositiveFloat = Field(
        default=60.0,
        description="Seconds of read timeout per call: structured answers of ~1k tokens finish well within.",
    )
    max_attempts: int = Field(
        default=5, ge=1, le=10, description="Calls per item including the first: bounded retries, then dead-letter."
    )
    structured_mode: StructuredMode = Field(
        default="json_schema",
        description="`json_schema` (strict structured outputs) or `json_object` (JSON mode + validation).",
    )
    prices: dict[str, ModelPrice] = Field(
        default_factory=dict, description='JSON `{"model": {"input_per_million": 0.15, "output_per_million": 0.6}}`.'
    )
    run_budget: float | None = Field(
        default=None,
        gt=0,
        description="Spend limit per run in the price table's currency; the run stops cleanly when reached.",
    )

    def api_key(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The key from the named environment variable, or None when unset/empty."""
        env = os.environ if environ is None else environ
        value = env.get(self.api_key_env, "").strip()
        return value or None


def llm_enabled(settings: LLMSettings | None, environ: Mapping[str, str] | None = None) -> bool:
    """True when settings exist *and* their key variable is set (else: offline path)."""
    return settings is not None and settings.api_key(environ) is not None


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
        description="share of a run's items dead-lettered above which the run ends `failed` instead of `succeeded`",
    )
    max_error_chars: int = Field(
        default=2_000,
        ge=80,
        description="characters of an error message kept in a dead letter or a run: the cause, not a dump",
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
    heartbeat_interval_s: float = Field(default=5.0, gt=0, description="seconds between worker heartbeats")
    stalled_worker_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="seconds without a heartbeat after which a worker is dead and its jobs are taken over (6 missed heartbeats)",
    )
    maintenance_interval_s: float = Field(
        default=2.0,
        gt=0,
        description="seconds between a worker's sweeps: stalled-job takeover and finishing stopped runs",
    )
    shutdown_grace_s: float = Field(
        default=60.0, ge=0, description="seconds a stopping worker waits for in-flight jobs before aborting them"
    )
    progress_poll_s: float = Field(default=0.5, gt=0, description="seconds between progress reads by `threadline run`")


class InsightSettings(BaseSettings):
    """What offline insight shows and weighs (``THREADLINE_INSIGHT_<FIELD>``, JSON for maps)."""

    model_config = SettingsConfigDict(env_prefix="THREADLINE_INSIGHT_", extra="ignore")

    mask_personal_data: bool = Field(
        default=True,
        description="mask e-mails, phones, card/IBAN/account numbers, PINs, codes, passwords, API keys and street "
        "addresses in everything Threadline writes, shows or sends (stored text stays verbatim); off only for "
        "debugging on data that holds none",
    )
    plan_weights: dict[str, float] = Field(
        default_factory=dict,
        description='customer value per plan name, e.g. {"Enterprise": 3, "Team": 1} (unitless weights, compared '
        "with the run's mean); empty: plans are shown but carry no weight in the rank",
    )
    value_attribute: str | None = Field(
        default=None,
        description="name of a numeric customer attribute (e.g. seats, mrr) whose mean, relative to the run's mean, "
        "weighs a story's rank; unset: no attribute is used",
    )


class Settings(BaseSettings):
    """Runtime configuration; every field maps to ``THREADLINE_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="THREADLINE_", extra="ignore")

    home: Path = Field(default_factory=default_home, description="Data directory (embedded database, caches).")
    database_url: str | None = Field(
        default=None,
        description="PostgreSQL >= 15 with pgvector; unset means the embedded server under `home`.",
    )
    log_level: str = Field(default="WARNING", description="Python logging level for library loggers.")

    engine: EngineSettings = Field(default_factory=EngineSettings, description="Durable runs and workers.")
    llm: LLMSettings = Field(default_factory=LLMSettings, description="The optional LLM endpoint.")
    insight: InsightSettings = Field(
        default_factory=InsightSettings, description="Masking and the customer-value factors of offline insight."
    )

    @property
    def embedded_pgdata(self) -> Path:
        """Where the embedded server keeps its cluster."""
        return self.home / "pgdata"

    def configured_llm(self) -> LLMSettings | None:
        """The LLM settings when an endpoint and its key are configured, else None (offline)."""
        return self.llm if self.llm.base_url and llm_enabled(self.llm) else None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings for this process (read once; tests construct `Settings` directly)."""
    return Settings()
