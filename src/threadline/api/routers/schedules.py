"""Schedules: periodic sync -> run -> deliver of a scope (see `threadline.engine.schedules`)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field

from threadline.api.schemas import Problem
from threadline.engine.schedules import (
    ScheduleError,
    UnknownScheduleSource,
    add_schedule,
    list_schedules,
    remove_schedule,
    schedule_view,
)
from threadline.server.deps import ApiAuth, DbSession
from threadline.server.params import IdPath

router = APIRouter(tags=["schedules"], responses={401: {"model": Problem}})


class ScheduleIn(BaseModel):
    """A scope's sources and either a period (`1h`, `15m`) or a cron expression (UTC)."""

    sources: list[str] = Field(min_length=1, description="Source names of the scope.")
    every: str | None = Field(default=None, description="Period: a number and s, m, h or d (e.g. 1h).")
    cron: str | None = Field(default=None, description="Cron expression, UTC (e.g. '0 7 * * 1-5').")


class ScheduleOut(BaseModel):
    id: int
    sources: list[str]
    every_s: int | None
    cron: str | None
    next_at: str
    last_started_at: str | None
    last_run_id: int | None
    last_error: str | None


@router.get("/schedules", response_model=list[ScheduleOut])
def schedules(db: DbSession, _: ApiAuth) -> list[dict]:
    """Every schedule with its next due time and what its last scheduled run did."""
    return list_schedules(db)


@router.post(
    "/schedules",
    response_model=ScheduleOut,
    status_code=status.HTTP_201_CREATED,
    responses={404: {"model": Problem}, 409: {"model": Problem}},
)
def create_schedule(body: ScheduleIn, db: DbSession, _: ApiAuth) -> dict:
    """Schedule a scope (one schedule per scope: posting it again replaces its timing).

    404 when a source does not exist; 409 when the timing cannot be used (both or neither of
    `every` and `cron`, a period below the minimum, an invalid cron expression).
    """
    try:
        schedule = add_schedule(db, body.sources, every=body.every, cron=body.cron)
        view = schedule_view(schedule)
    except UnknownScheduleSource as exc:
        db.rollback()
        raise HTTPException(404, detail=str(exc)) from None
    except ScheduleError as exc:
        db.rollback()
        raise HTTPException(409, detail=str(exc)) from None
    db.commit()
    return view


class ScheduleRemoved(BaseModel):
    schedule: int
    removed: bool


@router.delete("/schedules/{schedule_id}", response_model=ScheduleRemoved, responses={404: {"model": Problem}})
def delete_schedule(schedule_id: IdPath, db: DbSession, _: ApiAuth) -> dict:
    """Remove a schedule (runs it started stay)."""
    if not remove_schedule(db, schedule_id):
        db.rollback()
        raise HTTPException(404, detail="no such schedule")
    db.commit()
    return {"schedule": schedule_id, "removed": True}
