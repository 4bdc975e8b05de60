"""Knowledge sources: list with article counts and last sync; detail with recent syncs; queue a sync job.

A sync is a `threadline.knowledge_sync` job run by `threadline worker` (never by this server).
At most one is queued or running per knowledge source: POSTing again while one is answers 202
with that job and `created: false` instead of queueing a duplicate.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, status

from threadline.api.schemas import KnowledgeSourceDetail, KnowledgeSourceOut, KnowledgeSyncQueued, Problem
from threadline.connectors.sources import SourceError
from threadline.db.models import KNOWLEDGE_NAME_CHARS
from threadline.engine.knowledge_sync import UnknownKnowledgeSource, enqueue_knowledge_sync
from threadline.read.knowledge import knowledge_source_detail, list_knowledge_sources
from threadline.server.deps import ApiAuth, DbSession
from threadline.server.params import LimitQuery, OffsetQuery, Page, page_of

router = APIRouter(tags=["knowledge"], responses={401: {"model": Problem}})

NamePath = Annotated[str, Path(min_length=1, max_length=KNOWLEDGE_NAME_CHARS, description="Knowledge source name.")]
NOT_FOUND = "no such knowledge source"


@router.get("/knowledge", response_model=Page[KnowledgeSourceOut])
def knowledge_sources(db: DbSession, _: ApiAuth, limit: LimitQuery = 50, offset: OffsetQuery = 0) -> dict:
    """Knowledge sources with their kind, active and removed article counts, last sync and queued/running job."""
    return page_of(list_knowledge_sources(db, limit=limit + 1, offset=offset), limit, offset)


@router.get("/knowledge/{name}", response_model=KnowledgeSourceDetail, responses={404: {"model": Problem}})
def knowledge_source(name: NamePath, db: DbSession, _: ApiAuth) -> dict:
    """One knowledge source with its options and its latest syncs (newest first, bounded)."""
    detail = knowledge_source_detail(db, name)
    if detail is None:
        raise HTTPException(404, detail=NOT_FOUND)
    return detail


@router.post(
    "/knowledge/{name}/sync",
    response_model=KnowledgeSyncQueued,
    status_code=status.HTTP_202_ACCEPTED,
    responses={404: {"model": Problem}, 409: {"model": Problem}},
)
def sync_knowledge_source(name: NamePath, db: DbSession, _: ApiAuth) -> dict:
    """Queue a sync job for a knowledge source, or answer with the one already queued/running.

    202 either way (`created` says which); 404 for an unknown name; 409 when its kind is no
    longer a registered knowledge connector. Follow the job with GET /knowledge/{name}.
    """
    try:
        job = enqueue_knowledge_sync(db, name)
    except UnknownKnowledgeSource:
        db.rollback()
        raise HTTPException(404, detail=NOT_FOUND) from None
    except SourceError as exc:
        db.rollback()
        raise HTTPException(409, detail=str(exc)) from None
    db.commit()
    return {
        "knowledge_source_id": job.knowledge_source_id,
        "name": name,
        "job_id": job.job_id,
        "created": job.created,
        "status": job.status,
    }
