"""Runs: start (enqueue jobs for workers), list, show with live progress, stop, resume; plus the overview."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, status
from sqlalchemy import select
from sqlalchemy.orm import Session

from threadline.api.schemas import Overview, Problem, RunOut, RunStart
from threadline.db.models import Source
from threadline.engine import service
from threadline.read import runs as run_read
from threadline.read.overview import overview
from threadline.server.deps import ApiAuth, DbSession, ReadDb
from threadline.server.params import IdPath, LimitQuery, OffsetQuery, Page, page_of

router = APIRouter(tags=["runs"], responses={401: {"model": Problem}})


@router.get("/overview", response_model=Overview, tags=["overview"])
async def get_overview(read: ReadDb, _: ApiAuth) -> dict:
    """Conversation volume per week, rising themes of the latest run, the current run."""
    return await read(overview)


@router.get("/runs", response_model=Page[RunOut])
async def runs(read: ReadDb, _: ApiAuth, limit: LimitQuery = 50, offset: OffsetQuery = 0) -> dict:
    """Newest first, each with its phases' counters and progress."""
    return page_of(await read(run_read.list_runs, limit=limit + 1, offset=offset), limit, offset)


@router.post(
    "/runs",
    response_model=RunOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses={404: {"model": Problem}, 409: {"model": Problem}},
)
def start_run(body: RunStart, db: DbSession, _: ApiAuth) -> dict:
    """Create a run and queue its jobs; `threadline worker` processes do the work, never this server.

    404 when `source` names no source; 409 when the service refuses the run.
    """
    if body.source is not None and db.execute(select(Source.id).where(Source.name == body.source)).scalar() is None:
        raise HTTPException(404, detail=f"no source named {body.source!r}")
    try:
        run_id = service.enqueue_run(db, source=body.source, since=body.since, until=body.until)
    except service.RunError as exc:
        db.rollback()
        raise HTTPException(409, detail=str(exc)) from None
    db.commit()
    view = run_read.run_view(db, run_id)
    assert view is not None
    return view


@router.get("/runs/{run_id}", response_model=RunOut, responses={404: {"model": Problem}})
async def run(run_id: IdPath, read: ReadDb, _: ApiAuth) -> dict:
    """One run with live progress (per-phase counters, durations, dead letters)."""
    view = await read(run_read.run_view, run_id)
    if view is None:
        raise HTTPException(404, detail="no such run")
    return view


def _transition(db: Session, run_id: int, action: str) -> dict[str, Any]:
    if run_read.run_view(db, run_id) is None:
        raise HTTPException(404, detail="no such run")
    try:
        getattr(service, action)(db, run_id)
    except service.RunError as exc:
        db.rollback()
        raise HTTPException(409, detail=str(exc)) from None
    db.commit()
    view = run_read.run_view(db, run_id)
    assert view is not None
    return view


@router.post("/runs/{run_id}/stop", response_model=RunOut, responses={404: {"model": Problem}, 409: {"model": Problem}})
def stop_run(run_id: IdPath, db: DbSession, _: ApiAuth) -> dict:
    """Ask the run to stop: in-flight items finish, then it halts as `stopped` (resumable)."""
    return _transition(db, run_id, "request_stop")


@router.post(
    "/runs/{run_id}/resume", response_model=RunOut, responses={404: {"model": Problem}, 409: {"model": Problem}}
)
def resume_run(run_id: IdPath, db: DbSession, _: ApiAuth) -> dict:
    """Resume a stopped or failed run: only what is not done yet is queued again."""
    return _transition(db, run_id, "resume_run")
