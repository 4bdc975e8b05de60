"""What a run looks like to the CLI, the API and the dashboard: status, phases, progress, dead letters.

The one read model of runs: `run_view`, `list_runs` and `current_run` build the same shape
from four Core queries for any number of runs (not four ORM queries per run).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, Integer, Select, any_, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY

from threadline.db.tables import DEAD_LETTERS, RUN_PHASES, RUNS
from threadline.engine.scopes import scope_names
from threadline.engine.status import RunStatus

if TYPE_CHECKING:  # for annotations only: `threadline runs list` runs these Core queries without loading the ORM
    from sqlalchemy import Connection
    from sqlalchemy.orm import Session

PHASE_COUNTERS = ("total", "done", "skipped", "dead", "retries")  # per-phase counters `run_view` reports as integers
PHASES = RUN_PHASES


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _phase_view(counters: dict[str, Any], phase: Any, now: datetime) -> dict[str, Any]:
    """One phase's counters, state, duration and extra results."""
    values = dict(counters.get(phase.phase, {}))
    entry: dict[str, Any] = {key: int(values.get(key, 0)) for key in PHASE_COUNTERS}
    entry["state"] = phase.state
    entry["duration_s"] = None
    if phase.started_at is not None:
        entry["duration_s"] = round(((phase.finished_at or now) - phase.started_at).total_seconds(), 3)
    entry["result"] = {k: v for k, v in values.items() if k not in entry}
    return entry


def _run_rows() -> Select:
    """Runs' columns and the database's `now()` (for running phases' durations), unfiltered."""
    return select(
        RUNS.c.id,
        RUNS.c.status,
        RUNS.c.phase,
        RUNS.c.params,
        RUNS.c.counters,
        RUNS.c.error,
        RUNS.c.created_at,
        RUNS.c.started_at,
        RUNS.c.finished_at,
        RUNS.c.stop_requested_at,
        RUNS.c.generation,
        RUNS.c.scope_id,
        RUNS.c.period_start,
        RUNS.c.period_end,
        RUNS.c.snapshot,
        func.now().label("now"),
    )


RUN_IDS = bindparam("ids", type_=ARRAY(BigInteger))  # an array parameter: one SQL text whatever the number of runs
# Statements built once at import: SQLAlchemy reuses their compiled form and memoized cache key.
RUNS_BY_ID = _run_rows().where(RUNS.c.id == any_(RUN_IDS))
RUNS_PAGE = (
    _run_rows()
    .order_by(RUNS.c.id.desc())
    .limit(bindparam("limit", type_=Integer))
    .offset(bindparam("offset", type_=Integer))
)
RUNS_PAGE_OF_SCOPE = (
    _run_rows()
    .where(RUNS.c.scope_id == bindparam("scope_id", type_=BigInteger))
    .order_by(RUNS.c.id.desc())
    .limit(bindparam("limit", type_=Integer))
    .offset(bindparam("offset", type_=Integer))
)
PHASES_OF_RUNS = (
    select(PHASES.c.run_id, PHASES.c.phase, PHASES.c.state, PHASES.c.started_at, PHASES.c.finished_at)
    .where(PHASES.c.run_id == any_(RUN_IDS))
    .order_by(PHASES.c.run_id, PHASES.c.position)
)
OPEN_DEAD_LETTERS_OF_RUNS = (
    select(DEAD_LETTERS.c.run_id, func.count())
    .where(DEAD_LETTERS.c.run_id == any_(RUN_IDS), DEAD_LETTERS.c.retried_at.is_(None))
    .group_by(DEAD_LETTERS.c.run_id)
)
CURRENT_RUN_ID = (
    select(RUNS.c.id).order_by(RUNS.c.status.in_(RunStatus.where("is_in_progress")).desc(), RUNS.c.id.desc()).limit(1)
)


def run_views(session: Session | Connection, run_ids: list[int]) -> list[dict[str, Any]]:
    """The view of each run in `run_ids` (in that order; missing ids skipped), in three queries."""
    if not run_ids:
        return []
    by_id = {view["id"]: view for view in _views(session, session.execute(RUNS_BY_ID, {"ids": run_ids}).all())}
    return [by_id[run_id] for run_id in run_ids if run_id in by_id]


def _views(session: Session | Connection, runs: Sequence[Any]) -> list[dict[str, Any]]:
    """Views of these run rows (from `_run_rows`), with two more queries for all of them."""
    if not runs:
        return []
    ids = [run.id for run in runs]
    phases: dict[int, list[Any]] = {run_id: [] for run_id in ids}
    for phase in session.execute(PHASES_OF_RUNS, {"ids": ids}):
        phases[phase.run_id].append(phase)
    dead: dict[int, int] = {
        int(run_id): int(count) for run_id, count in session.execute(OPEN_DEAD_LETTERS_OF_RUNS, {"ids": ids})
    }
    names = scope_names(session, {run.scope_id for run in runs})
    return [_run_view(run, phases[run.id], dead.get(run.id, 0), names.get(run.scope_id, [])) for run in runs]


def _run_view(run: Any, phases: list[Any], dead_letters: int, sources: list[str]) -> dict[str, Any]:
    counters = run.counters or {}
    per_phase = {phase.phase: _phase_view(counters, phase, run.now) for phase in phases}
    units_total = sum(entry["total"] for entry in per_phase.values())
    units_finished = sum(min(e["total"], e["done"] + e["skipped"] + e["dead"]) for e in per_phase.values())
    if units_total:
        progress = round(units_finished / units_total, 4)
    else:
        progress = 1.0 if RunStatus(run.status).is_finished else 0.0
    return {
        "id": run.id,
        "status": run.status,
        "phase": run.phase,
        "params": run.params,
        "conversations": int(counters.get("conversations", 0)),
        "counters": per_phase,
        "progress": progress,
        "dead_letters": int(dead_letters),
        "generation": run.generation,
        "scope_id": run.scope_id,
        "sources": sources,
        "period_start": _iso(run.period_start),
        "period_end": _iso(run.period_end),
        "snapshot": bool(run.snapshot),
        "created_at": _iso(run.created_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "stop_requested_at": _iso(run.stop_requested_at),
        "error": run.error,
    }


def run_view(session: Session | Connection, run_id: int) -> dict[str, Any] | None:
    """One run, or None."""
    views = run_views(session, [run_id])
    return views[0] if views else None


def list_runs(
    session: Session | Connection, *, limit: int, offset: int, scope_id: int | None = None
) -> list[dict[str, Any]]:
    """Newest runs first, of one scope or all (four queries per page, whatever its size)."""
    if scope_id is None:
        runs = session.execute(RUNS_PAGE, {"limit": limit, "offset": offset}).all()
    else:
        runs = session.execute(RUNS_PAGE_OF_SCOPE, {"limit": limit, "offset": offset, "scope_id": scope_id}).all()
    return _views(session, runs)


def current_run(session: Session | Connection) -> dict[str, Any] | None:
    """The newest queued/running/stopping run, else the newest run of any status."""
    run_id = session.execute(CURRENT_RUN_ID).scalar()
    return None if run_id is None else run_view(session, run_id)
