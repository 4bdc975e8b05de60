"""Response models of source sync (kept apart from `schemas.py`; `SourceOut` is extended, not changed)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from threadline.api.schemas import SourceOut

SyncStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]


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
    job: str = Field(description="The job id, as a string (kept for clients of the first version).")
    job_id: int
    created: bool
    status: SyncStatus
