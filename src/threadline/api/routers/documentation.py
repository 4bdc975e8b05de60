"""Documentation of a run's snapshot: gaps (themes no article answers) and confusing articles."""

from __future__ import annotations

from fastapi import APIRouter

from threadline.api.schemas import Documentation, Problem
from threadline.read.documentation import documentation
from threadline.server.deps import ApiAuth, ReadDb
from threadline.server.params import RunQuery, SourcesQuery, pick_or_error

router = APIRouter(tags=["documentation"], responses={401: {"model": Problem}})


def _documentation(db, run_id: int | None, source: list[str] | None) -> dict:
    run = pick_or_error(db, run_id, source)
    if run is None:
        return {"run_id": None, "gaps": [], "confusing_articles": []}
    return documentation(db, run.id)


@router.get("/gaps", response_model=Documentation, responses={404: {"model": Problem}, 422: {"model": Problem}})
async def gaps(read: ReadDb, _: ApiAuth, run_id: RunQuery = None, source: SourcesQuery = None) -> dict:
    """Documentation gaps and confusing articles of one run (default: the latest), ranked by impact, with examples."""
    return await read(_documentation, run_id, source)
