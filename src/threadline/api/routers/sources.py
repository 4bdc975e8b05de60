"""Sources: list with counts; sync queues a connector job when the installation provides one."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from threadline.api.deps import ApiAuth, DbSession
from threadline.api.pagination import IdPath, LimitQuery, OffsetQuery, Page, page_of
from threadline.api.read.runs import service
from threadline.api.read.sources import list_sources
from threadline.api.schemas import Problem, SourceOut, SyncAccepted
from threadline.db.models import Source

router = APIRouter(tags=["sources"], responses={401: {"model": Problem}})

SYNCABLE_KINDS = ("intercom",)  # source kinds with a connector to pull from; files are imported, not synced


@router.get("/sources", response_model=Page[SourceOut])
def sources(db: DbSession, _: ApiAuth, limit: LimitQuery = 50, offset: OffsetQuery = 0) -> dict:
    return page_of(list_sources(db, limit=limit + 1, offset=offset), limit, offset)


@router.post("/sources/{source_id}/sync", response_model=SyncAccepted, status_code=status.HTTP_202_ACCEPTED,
             responses={404: {"model": Problem}, 409: {"model": Problem}, 503: {"model": Problem}})  # fmt: skip
def sync_source(source_id: IdPath, db: DbSession, _: ApiAuth) -> dict:
    """Queue a sync job for a connector source (Intercom); file sources answer 409."""
    source = db.get(Source, source_id)
    if source is None:
        raise HTTPException(404, detail="no such source")
    if source.kind not in SYNCABLE_KINDS:
        raise HTTPException(409, detail=f"{source.kind} sources are imported with `threadline import`, not synced")
    enqueue_sync = getattr(service(), "enqueue_sync", None)
    if enqueue_sync is None:
        raise HTTPException(409, detail="this installation has no sync job; run `threadline sync` instead")
    job = enqueue_sync(db, source_id)
    db.commit()
    return {"source_id": source_id, "job": str(job)}
