"""Which snapshot a view shows: one run of one scope, by default the latest succeeded run.

Every view (CLI, API, dashboard, report) shows one run's snapshot. Without a choice, that is
the latest succeeded run of the scope of the most recent succeeded run; naming sources
selects the scope of exactly those sources (its latest succeeded run); naming a run selects
that run (its scope must match the named sources, if any).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, Row, bindparam, func, select

from threadline.db.tables import RUN_STORIES, RUN_THEMES, RUNS, SCOPES
from threadline.engine.errors import RunError
from threadline.engine.scopes import find_scope, scope_names
from threadline.engine.status import RunStatus

if TYPE_CHECKING:  # for annotations only: `threadline themes` and `stories` pick their run without loading the ORM
    from sqlalchemy import Connection
    from sqlalchemy.orm import Session

LATEST_SUCCEEDED_RUN = select(RUNS.c.id).where(RUNS.c.status == RunStatus.SUCCEEDED).order_by(RUNS.c.id.desc()).limit(1)
LATEST_SUCCEEDED_RUN_OF_SCOPE = (
    select(RUNS.c.id)
    .where(RUNS.c.status == RunStatus.SUCCEEDED, RUNS.c.scope_id == bindparam("scope_id", type_=BigInteger))
    .order_by(RUNS.c.id.desc())
    .limit(1)
)
MAX_PICKER_RUNS = 50  # runs of a scope offered by the dashboard's run picker: the recent history


class ViewError(ValueError):
    """The asked-for run or scope does not exist or does not match; the message says what to ask instead.

    `status` is the HTTP status the API answers with: 404 for what does not exist, 422 for a
    run outside the named scope.
    """

    def __init__(self, message: str, status: int = 404) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class RunRef:
    """The run a view shows, with what a person needs to read it: scope and period."""

    id: int
    scope_id: int
    sources: list[str]
    status: str
    period_start: datetime | None
    period_end: datetime | None
    snapshot: bool  # False: the run predates snapshots (names and stories may be "not recorded")

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "scope_id": self.scope_id,
            "sources": self.sources,
            "status": self.status,
            "period_start": self.period_start.isoformat() if self.period_start else None,
            "period_end": self.period_end.isoformat() if self.period_end else None,
            "snapshot": self.snapshot,
        }


RUN_REF = select(
    RUNS.c.id, RUNS.c.scope_id, RUNS.c.status, RUNS.c.period_start, RUNS.c.period_end, RUNS.c.snapshot
).where(RUNS.c.id == bindparam("run_id", type_=BigInteger))


def run_ref(session: Session | Connection, run_id: int) -> RunRef | None:
    run = session.execute(RUN_REF, {"run_id": run_id}).first()
    if run is None:
        return None
    names = scope_names(session, [run.scope_id]).get(run.scope_id, [])
    return RunRef(run.id, run.scope_id, names, run.status, run.period_start, run.period_end, bool(run.snapshot))


def pick_run(
    session: Session | Connection, *, run_id: int | None = None, sources: Sequence[str] | None = None
) -> RunRef | None:
    """The run to show (see the module docstring); None when nothing has succeeded yet.

    Raises `ViewError` for an unknown run or source, a run outside the named scope, or a
    set of sources no run has read.
    """
    names = sorted(set(sources or ()))
    scope: Row[Any] | None = None
    if names:
        try:
            scope = find_scope(session, names)
        except RunError as exc:
            raise ViewError(str(exc)) from None
        if scope is None:
            raise ViewError(f"no run has read exactly the sources {', '.join(names)} yet")
    if run_id is not None:
        ref = run_ref(session, run_id)
        if ref is None:
            raise ViewError(f"no run {run_id}")
        if scope is not None and ref.scope_id != scope.id:
            raise ViewError(
                f"run {run_id} read {', '.join(ref.sources) or 'no source'}, not {', '.join(names)}", status=422
            )
        return ref
    if scope is not None:
        latest = session.execute(LATEST_SUCCEEDED_RUN_OF_SCOPE, {"scope_id": scope.id}).scalar()
    else:
        latest = session.execute(LATEST_SUCCEEDED_RUN).scalar()
    return run_ref(session, latest) if latest is not None else None


def scope_run(session: Session | Connection, scope_id: int) -> RunRef | None:
    """The latest succeeded run of a scope (the dashboard's scope picker)."""
    latest = session.execute(LATEST_SUCCEEDED_RUN_OF_SCOPE, {"scope_id": scope_id}).scalar()
    return run_ref(session, latest) if latest is not None else None


def list_scopes(session: Session | Connection) -> list[dict[str, Any]]:
    """Every scope some run read: its sources, runs, latest succeeded run (newest activity first)."""
    rows = session.execute(
        select(
            SCOPES.c.id,
            func.count(RUNS.c.id).label("runs"),
            func.max(RUNS.c.id).filter(RUNS.c.status == RunStatus.SUCCEEDED).label("latest_succeeded"),
            func.max(RUNS.c.id).label("latest"),
        )
        .join(RUNS, RUNS.c.scope_id == SCOPES.c.id)
        .group_by(SCOPES.c.id)
        .order_by(func.max(RUNS.c.id).desc())
    ).all()
    names = scope_names(session, [r.id for r in rows])
    return [
        {
            "id": r.id,
            "sources": names.get(r.id, []),
            "runs": int(r.runs),
            "latest_run_id": r.latest,
            "latest_succeeded_run_id": r.latest_succeeded,
        }
        for r in rows
    ]


def runs_of_scope(
    session: Session | Connection, scope_id: int, *, limit: int = MAX_PICKER_RUNS
) -> list[dict[str, Any]]:
    """The scope's runs with a snapshot to show (newest first), for pickers."""
    rows = session.execute(
        select(RUNS.c.id, RUNS.c.status, RUNS.c.period_start, RUNS.c.period_end, RUNS.c.snapshot, RUNS.c.created_at)
        .where(RUNS.c.scope_id == scope_id)
        .where(
            select(RUN_THEMES.c.run_id).where(RUN_THEMES.c.run_id == RUNS.c.id).exists()
            | select(RUN_STORIES.c.run_id).where(RUN_STORIES.c.run_id == RUNS.c.id).exists()
        )
        .order_by(RUNS.c.id.desc())
        .limit(limit)
    ).all()
    return [dict(row._mapping) for row in rows]
