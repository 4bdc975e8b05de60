"""Runs: start (enqueue jobs for workers), list, show with live progress, stop, resume; plus the overview."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from sqlalchemy import select
from sqlalchemy.orm import Session

from threadline.api.schemas import Changes, Overview, Problem, RunOut, RunStart, ScopeOut
from threadline.db.models import Source
from threadline.engine import service
from threadline.read import runs as run_read
from threadline.read.changes import changes
from threadline.read.overview import overview
from threadline.read.views import list_scopes
from threadline.server.deps import ApiAuth, DbSession, ReadDb
from threadline.server.params import (
    MAX_ID,
    IdPath,
    LimitQuery,
    OffsetQuery,
    Page,
    RunQuery,
    SourcesQuery,
    page_of,
    pick_or_error,
)

router = APIRouter(tags=["runs"], responses={401: {"model": Problem}})


def _overview(db: Session, run_id: int | None, source: list[str] | None) -> dict[str, Any]:
    return overview(db, pick_or_error(db, run_id, source))


@router.get(
    "/overview",
    response_model=Overview,
    tags=["overview"],
    responses={404: {"model": Problem}, 422: {"model": Problem}},
)
async def get_overview(read: ReadDb, _: ApiAuth, run_id: RunQuery = None, source: SourcesQuery = None) -> dict:
    """One run's volume over its period, its rising themes, what changed since the previous run; the current run."""
    return await read(_overview, run_id, source)


def _changes(db: Session, run_id: int | None, source: list[str] | None) -> dict[str, Any]:
    run = pick_or_error(db, run_id, source)
    if run is None:
        raise HTTPException(404, detail="no succeeded run yet")
    return changes(db, run)


@router.get(
    "/changes",
    response_model=Changes,
    tags=["overview"],
    responses={404: {"model": Problem}, 422: {"model": Problem}},
)
async def get_changes(read: ReadDb, _: ApiAuth, run_id: RunQuery = None, source: SourcesQuery = None) -> dict:
    """What changed in a run against the previous run of its scope: new, returned, growing, shrinking, gone
    themes (sizes and rates per week), renamed themes, and stories that are new, dropped or whose evidence changed."""
    return await read(_changes, run_id, source)


@router.get("/scopes", response_model=Page[ScopeOut], tags=["overview"])
async def scopes(read: ReadDb, _: ApiAuth, limit: LimitQuery = 50, offset: OffsetQuery = 0) -> dict:
    """Every scope (set of sources) some run read, newest activity first, with its latest succeeded run."""
    rows = await read(list_scopes)
    return page_of(rows[offset : offset + limit + 1], limit, offset)


@router.get("/runs", response_model=Page[RunOut])
async def runs(
    read: ReadDb,
    _: ApiAuth,
    limit: LimitQuery = 50,
    offset: OffsetQuery = 0,
    scope_id: Annotated[int | None, Query(ge=1, le=MAX_ID, description="Only this scope's runs.")] = None,
) -> dict:
    """Newest first, each with its scope (sources), period, phases' counters and progress."""
    return page_of(await read(run_read.list_runs, limit=limit + 1, offset=offset, scope_id=scope_id), limit, offset)


@router.post(
    "/runs",
    response_model=RunOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses={404: {"model": Problem}, 409: {"model": Problem}, 422: {"model": Problem}},
)
def start_run(body: RunStart, db: DbSession, _: ApiAuth) -> dict:
    """Create a run over a scope (the named sources, or every source that exists now) and queue its jobs.

    `threadline worker` processes do the work, never this server. 404 when a source does
    not exist; 422 when the period is inverted or matches no conversation (nothing is
    written); 409 when the service refuses the run.
    """
    names = sorted(set(body.sources or []) | ({body.source} if body.source else set()))
    known = set(db.execute(select(Source.name).where(Source.name.in_(names))).scalars()) if names else set()
    missing = [n for n in names if n not in known]
    if missing:
        raise HTTPException(404, detail=f"no source named {', '.join(repr(n) for n in missing)}")
    try:
        run_id = service.enqueue_run(db, sources=names, since=body.since, until=body.until)
    except service.RunRequestError as exc:
        db.rollback()
        raise HTTPException(422, detail=str(exc)) from None
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
