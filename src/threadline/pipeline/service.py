"""The run service used by the CLI and the HTTP API: enqueue, stop, resume, inspect, dead letters,
and connector syncs (`enqueue_sync`, `sync_status`, `sync_statuses`; see `sync_job.py`).

Every function takes the caller's session and leaves committing to the caller; none of
them does pipeline work (jobs are deferred into the same transaction, see `defer.py`).
Workers execute the jobs: `threadline worker --concurrency N` against
THREADLINE_DATABASE_URL (any machine), or `get_app()` + `pipeline.worker.run_worker`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from threadline.config import MAX_LIST_LIMIT
from threadline.db.models import DeadLetter, Run, RunItem, RunPhase
from threadline.pipeline.defer import defer_jobs
from threadline.pipeline.errors import RunError
from threadline.pipeline.jobs import get_app
from threadline.pipeline.lifecycle import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    add_counters,
    batch_job,
    lock_run,
    request_advance,
    try_finish_stop,
)
from threadline.pipeline.runs import create_run
from threadline.pipeline.stages import PER_CONVERSATION_STAGES
from threadline.pipeline.sync_job import (
    NotSyncable,
    SyncEnqueued,
    SyncError,
    UnknownSource,
    enqueue_sync,
    sync_status,
    sync_statuses,
)

__all__ = [
    "RunError",
    "enqueue_run",
    "request_stop",
    "resume_run",
    "run_view",
    "list_runs",
    "list_dead_letters",
    "retry_dead_letter",
    "retry_dead_letters",
    "purge_dead_letters",
    "get_app",
    "enqueue_sync",
    "sync_status",
    "sync_statuses",
    "SyncEnqueued",
    "SyncError",
    "UnknownSource",
    "NotSyncable",
]

STOPPABLE = ACTIVE_STATUSES
RESUMABLE = ("stopped", "failed")


def enqueue_run(
    session: Session, *, source: str | None = None, since: datetime | None = None, until: datetime | None = None
) -> int:
    """Create the run (membership, items, phases) and defer its first job; the caller commits."""
    return create_run(session, source=source, since=since, until=until).id


def request_stop(session: Session, run_id: int) -> Run:
    """Store a stop request (status `stopping`); workers finish in-flight batches and start no new ones.

    Becomes `stopped` at once when nothing is in flight, else when the last in-flight job
    ends (within one batch's duration, plus the stalled-worker timeout if a worker died).
    Stopping an already stopping run is a no-op.
    """
    run = lock_run(session, run_id)
    if run is None:
        raise RunError(f"no run {run_id}")
    if run.status == "stopping":
        return run
    if run.status not in STOPPABLE:
        raise RunError(f"run {run_id} is {run.status}; only queued or running runs can be stopped")
    run.status = "stopping"
    run.stop_requested_at = func.clock_timestamp()
    session.flush()
    try_finish_stop(session, run_id)
    session.refresh(run)
    return run


def resume_run(session: Session, run_id: int) -> Run:
    """Continue a stopped (or failed) run: a new generation of jobs for the unfinished work only.

    Items already done, skipped or dead-lettered stay as they are (dead letters are retried
    with `retry_dead_letter`); unfinished phases are started again by the advance job.
    Jobs of the previous generation that are still queued do nothing when they run.
    """
    run = lock_run(session, run_id)
    if run is None:
        raise RunError(f"no run {run_id}")
    if run.status not in RESUMABLE:
        raise RunError(f"run {run_id} is {run.status}; only stopped or failed runs can be resumed")
    _reopen(session, run, from_position=None)
    session.flush()
    session.refresh(run)
    return run


def _reopen(session: Session, run: Run, from_position: int | None) -> None:
    """Running again under a new generation; phases not done (or at/after `from_position`) restart."""
    run.generation = run.generation + 1
    run.status = "running"
    run.error = None
    run.finished_at = None
    run.stop_requested_at = None
    condition = RunPhase.state != "done"
    if from_position is not None:
        condition = condition | (RunPhase.position >= from_position)
    session.execute(
        update(RunPhase).where(RunPhase.run_id == run.id, condition).values(state="pending", finished_at=None)
    )
    session.flush()
    request_advance(session, run)


def _phase_duration(phase: RunPhase | None, now: datetime) -> float | None:
    if phase is None or phase.started_at is None:
        return None
    end = phase.finished_at or now
    return round((end - phase.started_at).total_seconds(), 3)


def run_view(session: Session, run_id: int) -> dict[str, Any] | None:
    """JSON-ready state of a run: status, phase, per-phase counters and durations, progress, dead letters."""
    run = session.get(Run, run_id, populate_existing=True)
    if run is None:
        return None
    now = session.execute(select(func.now())).scalar_one()
    phases = {
        p.phase: p
        for p in session.execute(
            select(RunPhase).where(RunPhase.run_id == run_id).order_by(RunPhase.position)
        ).scalars()
    }
    counters = run.counters or {}
    per_phase: dict[str, Any] = {}
    units_total = units_finished = 0
    for name, phase in phases.items():
        values = dict(counters.get(name, {}))
        entry = {key: int(values.get(key, 0)) for key in ("total", "done", "skipped", "dead", "retries")}
        entry["state"] = phase.state
        entry["duration_s"] = _phase_duration(phase, now)
        entry["result"] = {k: v for k, v in values.items() if k not in entry}
        per_phase[name] = entry
        units_total += entry["total"]
        units_finished += min(entry["total"], entry["done"] + entry["skipped"] + entry["dead"])
    dead_letters = session.execute(
        select(func.count()).select_from(DeadLetter).where(DeadLetter.run_id == run_id, DeadLetter.retried_at.is_(None))
    ).scalar_one()
    return {
        "id": run.id,
        "status": run.status,
        "phase": run.phase,
        "params": run.params,
        "conversations": int(counters.get("conversations", 0)),
        "counters": per_phase,
        "progress": round(units_finished / units_total, 4)
        if units_total
        else (1.0 if run.status in TERMINAL_STATUSES else 0.0),
        "dead_letters": int(dead_letters),
        "generation": run.generation,
        "created_at": _iso(run.created_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "stop_requested_at": _iso(run.stop_requested_at),
        "error": run.error,
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


PAGE_PROBE_ROWS = 1  # rows allowed beyond MAX_LIST_LIMIT: a paginating caller asks for limit + 1 to detect a next page


def _bounded(limit: int) -> int:
    """`limit` clamped to 1..MAX_LIST_LIMIT (+ the page probe row)."""
    return min(max(int(limit), 1), MAX_LIST_LIMIT + PAGE_PROBE_ROWS)


def list_runs(session: Session, *, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
    """Newest runs first, as `run_view` dicts; `limit` at most MAX_LIST_LIMIT."""
    ids = (
        session.execute(select(Run.id).order_by(Run.id.desc()).limit(_bounded(limit)).offset(max(offset, 0)))
        .scalars()
        .all()
    )
    return [view for view in (run_view(session, run_id) for run_id in ids) if view is not None]


def _dead_letter_dict(letter: DeadLetter) -> dict[str, Any]:
    return {
        "id": letter.id,
        "run_id": letter.run_id,
        "stage": letter.stage,
        "item": letter.item,
        "error_class": letter.error_class,
        "error_message": letter.error_message,
        "attempts": letter.attempts,
        "failed_at": _iso(letter.failed_at),
        "retried_at": _iso(letter.retried_at),
    }


def list_dead_letters(
    session: Session, *, run_id: int | None = None, limit: int = 100, offset: int = 0
) -> list[dict[str, Any]]:
    """Dead letters not yet retried, newest first (optionally of one run); `limit` at most MAX_LIST_LIMIT."""
    query = select(DeadLetter).where(DeadLetter.retried_at.is_(None))
    if run_id is not None:
        query = query.where(DeadLetter.run_id == run_id)
    rows = session.execute(query.order_by(DeadLetter.id.desc()).limit(_bounded(limit)).offset(max(offset, 0))).scalars()
    return [_dead_letter_dict(letter) for letter in rows]


_CLAIM_SQL = text(
    """
    UPDATE dead_letters SET retried_at = now()
     WHERE id = :id AND retried_at IS NULL
    RETURNING run_id, stage, item
    """
)


def retry_dead_letter(session: Session, dead_letter_id: int) -> bool:
    """Re-enqueue one dead-lettered item; True only for the single caller whose UPDATE won.

    The claim is one atomic `UPDATE ... WHERE retried_at IS NULL RETURNING`: a concurrent
    second caller blocks on the row, then finds `retried_at` set and gets False. The item
    goes back to pending and its work is deferred in the same transaction.
    """
    claimed = session.execute(_CLAIM_SQL, {"id": dead_letter_id}).first()
    if claimed is None:
        return False
    run_id, stage, item = claimed
    if run_id is None:
        return True
    _requeue_item(session, int(run_id), stage, item)
    return True


def _requeue_item(session: Session, run_id: int, stage: str, item: str) -> None:
    run = lock_run(session, run_id)
    if run is None:
        return
    position = session.execute(
        select(RunPhase.position).where(RunPhase.run_id == run_id, RunPhase.phase == stage)
    ).scalar()
    if stage in PER_CONVERSATION_STAGES:
        moved = session.execute(
            update(RunItem)
            .where(
                RunItem.run_id == run_id,
                RunItem.stage == stage,
                RunItem.conversation_id == int(item),
                RunItem.state == "dead",
            )
            .values(state="pending", attempts=0, reason=None, finished_at=None)
            .returning(RunItem.conversation_id)
        ).first()
        if moved is not None:
            add_counters(run, stage, {"dead": -1})
    else:
        add_counters(run, stage, {"dead": -1})
    if run.status in TERMINAL_STATUSES:
        _reopen(session, run, from_position=position)  # later phases consume this item's result: redo them
    elif run.status in ACTIVE_STATUSES and stage in PER_CONVERSATION_STAGES:
        phase_state = session.execute(
            select(RunPhase.state).where(RunPhase.run_id == run_id, RunPhase.phase == stage)
        ).scalar()
        if phase_state != "pending":  # a pending phase is started (with this item) by the advance job
            defer_jobs(session, [batch_job(run_id, run.generation, stage, [int(item)])])
    # stopping/stopped runs: the item is pending; `resume` picks it up.


def retry_dead_letters(session: Session, *, run_id: int | None = None) -> int:
    """Retry every open dead letter (of one run, or all); returns how many this call re-enqueued."""
    query = select(DeadLetter.id).where(DeadLetter.retried_at.is_(None)).order_by(DeadLetter.id)
    if run_id is not None:
        query = query.where(DeadLetter.run_id == run_id)
    return sum(retry_dead_letter(session, letter_id) for letter_id in session.execute(query).scalars().all())


def purge_dead_letters(session: Session, *, run_id: int | None = None) -> int:
    """Delete dead letters that were already retried (history no longer needed); returns how many."""
    query = DeadLetter.__table__.delete().where(DeadLetter.retried_at.is_not(None))
    if run_id is not None:
        query = query.where(DeadLetter.run_id == run_id)
    return session.execute(query).rowcount or 0
