"""Settings read from the environment (prefix ``THREADLINE_``) and the limits every stage obeys.

Limits are module constants with a unit and a reason so that a reviewer can see, in one
place, why a record was rejected or a batch has the size it has.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field
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
MAX_CSV_RECORD_BYTES = (
    2 * 1024 * 1024
)  # bytes per CSV row (quoted newlines included): bounds what an unclosed quote can swallow before it is reported
MAX_STATE_CHARS = 32  # characters: conversations.state is VARCHAR(32)
MAX_SOURCE_NAME_CHARS = 200  # characters: sources.name is VARCHAR(200)
MAX_JSON_DEPTH = 64  # nesting levels in one JSONL record: exports nest a handful; deeper is an attack or a bug
MAX_JSON_NUMBER_CHARS = (
    100  # characters of one JSON number: longer is no id, count or time (and Python refuses > 4,300 digits)
)
MAX_TIMESTAMP_CHARS = 64  # characters of an ISO-8601 timestamp: the longest valid form is about 40
EARLIEST_TIMESTAMP_YEAR = 1970  # first accepted year (UTC): earlier times in a support export are bugs (e.g. year 1)
LATEST_TIMESTAMP_YEAR = 2099  # last accepted year (UTC): later ones are bugs (milliseconds read as seconds, year 9999)
MAX_PROBLEMS_PER_RECORD = 10  # problems reported for one record: enough to fix it, bounded for a garbage line
MAX_REPORTED_PROBLEMS = 10_000  # problems and duplicates kept in an import report; more are counted, not listed

# --- Pipeline sizes -------------------------------------------------------------------
EMBED_BATCH_SIZE = 64  # texts per model call: fills the CPU's vector units without large padding waste
EMBED_INPUT_MAX_CHARS = 4_000  # characters of customer text embedded: MiniLM reads 256 tokens, more only costs time
STORE_BATCH_SIZE = 500  # rows per INSERT statement: keeps statements well under PostgreSQL's 65,535 bind parameters
STORE_BATCH_MAX_CHARS = 4_000_000  # message characters per import batch: bounds memory when conversations are long
STORE_BATCH_ATTEMPTS = 5  # attempts per import batch on a deadlock or serialization failure (concurrent imports)
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


class Settings(BaseSettings):
    """Runtime configuration; every field maps to ``THREADLINE_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="THREADLINE_", extra="ignore")

    home: Path = Field(default_factory=default_home, description="Data directory (embedded database, caches).")
    database_url: str | None = Field(
        default=None,
        description="PostgreSQL >= 15 with pgvector; unset means the embedded server under `home`.",
    )
    log_level: str = Field(default="WARNING", description="Python logging level for library loggers.")

    @property
    def embedded_pgdata(self) -> Path:
        """Where the embedded server keeps its cluster."""
        return self.home / "pgdata"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings for this process (read once; tests construct `Settings` directly)."""
    return Settings()
