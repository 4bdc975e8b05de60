"""Sources: list with counts and last sync; queue a sync job for a connector source; show its state.

A sync is a `threadline.sync` job run by `threadline worker` (never by this server). At most one
is queued or running per source: POSTing again while one is answers 202 with that job and
`created: false` instead of queueing a duplicate.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, status
from sqlalchemy.orm import Session

from threadline.api.schemas import Problem, SourceSyncOut, SourceWithSyncOut, SyncQueued
from threadline.db.models import Source
from threadline.engine.sync import SyncError, UnknownSource, enqueue_sync, sync_statuses
from threadline.read.sources import list_sources
from threadline.server.deps import ApiAuth, DbSession
from threadline.server.params import IdPath, LimitQuery, OffsetQuery, Page, page_of

router = APIRouter(tags=["sources"], responses={401: {"model": Problem}})


def _last_syncs(db: Session, source_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Last sync per source (one query for the page)."""
    return sync_statuses(db, source_ids)


@router.get("/sources", response_model=Page[SourceWithSyncOut])
def sources(db: DbSession, _: ApiAuth, limit: LimitQuery = 50, offset: OffsetQuery = 0) -> dict:
    """Sources with their conversation counts and last sync job (status, times, counters, error)."""
    rows = list_sources(db, limit=limit + 1, offset=offset)
    last = _last_syncs(db, [row["id"] for row in rows])
    return page_of([{**row, "last_sync": last.get(row["id"])} for row in rows], limit, offset)


@router.post(
    "/sources/{source_id}/sync",
    response_model=SyncQueued,
    status_code=status.HTTP_202_ACCEPTED,
    responses={404: {"model": Problem}, 409: {"model": Problem}},
)
def sync_source(source_id: IdPath, db: DbSession, _: ApiAuth) -> dict:
    """Queue a sync job for a source with a connector (e.g. Intercom), or answer with the one already queued/running.

    202 either way (`created` says which); 404 for an unknown source; 409 for file sources.
    Follow the job with GET /sources/{source_id}/sync.
    """
    try:
        job = enqueue_sync(db, source_id)
    except UnknownSource:
        db.rollback()
        raise HTTPException(404, detail="no such source") from None
    except SyncError as exc:
        db.rollback()
        raise HTTPException(409, detail=str(exc)) from None
    db.commit()
    return {
        "source_id": source_id,
        "job_id": job.job_id,
        "created": job.created,
        "status": job.status,
    }


@router.get("/sources/{source_id}/sync", response_model=SourceSyncOut, responses={404: {"model": Problem}})
def source_sync(source_id: IdPath, db: DbSession, _: ApiAuth) -> dict:
    """The source's last sync job: status, queued/started/finished times, counters, error (null if never synced)."""
    if db.get(Source, source_id) is None:
        raise HTTPException(404, detail="no such source")
    return {"source_id": source_id, "last_sync": _last_syncs(db, [source_id]).get(source_id)}
