"""Dead letters: items a stage gave up on; list them and retry one (at most once per failure)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from threadline.api.schemas import DeadLetterOut, Problem, RetryResult
from threadline.db.models import DeadLetter
from threadline.engine.service import retry_dead_letter
from threadline.read.dead_letters import list_dead_letters
from threadline.server.deps import ApiAuth, DbSession, ReadDb
from threadline.server.params import MAX_ID, IdPath, LimitQuery, OffsetQuery, Page, page_of

router = APIRouter(tags=["dead letters"], responses={401: {"model": Problem}, 503: {"model": Problem}})


@router.get("/dead-letters", response_model=Page[DeadLetterOut])
async def dead_letters(
    read: ReadDb,
    _: ApiAuth,
    limit: LimitQuery = 50,
    offset: OffsetQuery = 0,
    run_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> dict:
    """Items not retried yet, newest first (optionally of one run)."""
    rows = await read(list_dead_letters, run_id=run_id, limit=limit + 1, offset=offset)
    return page_of(rows, limit, offset)


@router.post(
    "/dead-letters/{dead_letter_id}/retry",
    response_model=RetryResult,
    responses={404: {"model": Problem}, 409: {"model": Problem}},
)
def retry(dead_letter_id: IdPath, db: DbSession, _: ApiAuth) -> dict:
    """Queue the item again; 409 when it was already retried (one atomic claim per failure)."""
    if db.get(DeadLetter, dead_letter_id) is None:
        raise HTTPException(404, detail="no such dead letter")
    retried = bool(retry_dead_letter(db, dead_letter_id))
    db.commit()
    if not retried:
        raise HTTPException(409, detail="already retried")
    return {"id": dead_letter_id, "retried": True}
