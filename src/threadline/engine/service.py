"""Commands on runs and dead letters, used by the CLI, the HTTP API and the dashboard: enqueue,
stop, resume, list and retry dead letters. What a run looks like is `threadline.read.runs`.

Every function takes the caller's session and leaves committing to the caller; none of
them does pipeline work (jobs are deferred into the same transaction, see `defer.py`).
Workers execute the jobs: `threadline worker --concurrency N` against
THREADLINE_DATABASE_URL (any machine), or `threadline.engine.worker.run_worker`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.orm import Session

from threadline.config import get_settings
from threadline.db.models import DeadLetter, Notification, Run, RunItem, RunPhase
from threadline.engine.defer import defer_jobs
from threadline.engine.errors import RunError, RunRequestError
from threadline.engine.lifecycle import (
    add_counters,
    batch_job,
    deliver_job,
    lock_run,
    request_advance,
    try_finish_stop,
)
from threadline.engine.runs import create_run
from threadline.engine.stage import is_per_conversation, stage_queue
from threadline.engine.status import RunStatus
from threadline.exporters.notifications import NOTIFY_STAGE_PREFIX

__all__ = [
    "RunError",
    "RunRequestError",
    "enqueue_run",
    "request_stop",
    "resume_run",
    "retry_dead_letter",
    "retry_dead_letters",
    "purge_dead_letters",
]


def enqueue_run(
    session: Session,
    *,
    source: str | None = None,
    sources: Sequence[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> int:
    """Create the run (scope, membership, items, phases) and defer its first job; the caller commits.

    Raises `RunRequestError` (a `RunError`) when the period is inverted or nothing matches.
    """
    return create_run(session, source=source, sources=sources, since=since, until=until).id


def request_stop(session: Session, run_id: int) -> Run:
    """Store a stop request (status `stopping`); workers finish in-flight batches and start no new ones.

    Becomes `stopped` at once when nothing is in flight, else when the last in-flight job
    ends (within one batch's duration, plus the stalled-worker timeout if a worker died).
    Stopping an already stopping run is a no-op.
    """
    run = lock_run(session, run_id)
    if run is None:
        raise RunError(f"no run {run_id}")
    if run.status == RunStatus.STOPPING:
        return run
    if not RunStatus(run.status).can_be_stopped:
        raise RunError(f"run {run_id} is {run.status}; only queued or running runs can be stopped")
    run.status = RunStatus.STOPPING
    run.stop_requested_at = func.clock_timestamp()
    session.flush()
    try_finish_stop(session, run_id)
    session.refresh(run)
    return run


_LIVE_WORKERS_SQL = text(
    "SELECT EXISTS (SELECT 1 FROM procrastinate_workers WHERE last_heartbeat > now() - make_interval(secs => :seconds))"
)


def _any_live_worker(session: Session) -> bool:
    """Whether any worker has sent a heartbeat within the stalled-worker timeout (it could be on the run)."""
    seconds = get_settings().engine.stalled_worker_timeout_s
    return bool(session.execute(_LIVE_WORKERS_SQL, {"seconds": seconds}).scalar_one())


def resume_run(session: Session, run_id: int) -> Run:
    """Continue a stopped (or failed) run: a new generation of jobs for the unfinished work only.

    A run left `running` (or `stopping`) whose process or database died is orphaned: with no
    live worker (no heartbeat within `engine.stalled_worker_timeout_s`) nothing will ever
    finish it, so it can be resumed too; while any worker lives, its takeover of stalled jobs
    finishes the run instead.

    Items already done, skipped or dead-lettered stay as they are (dead letters are retried
    with `retry_dead_letter`); unfinished phases are started again by the advance job.
    Jobs of the previous generation that are still queued do nothing when they run.
    """
    run = lock_run(session, run_id)
    if run is None:
        raise RunError(f"no run {run_id}")
    orphaned = RunStatus(run.status) in (RunStatus.RUNNING, RunStatus.STOPPING) and not _any_live_worker(session)
    if not (RunStatus(run.status).can_be_resumed or orphaned):
        raise RunError(
            f"run {run_id} is {run.status}; only stopped or failed runs, or running ones no live worker is on, "
            "can be resumed"
        )
    _reopen(session, run, from_position=None)
    session.flush()
    session.refresh(run)
    return run


def _reopen(session: Session, run: Run, from_position: int | None) -> None:
    """Running again under a new generation; phases not done (or at/after `from_position`) restart."""
    run.generation = run.generation + 1
    run.status = RunStatus.RUNNING
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
        if stage.startswith(NOTIFY_STAGE_PREFIX) and item.isdigit():  # a digest: send the stored one again
            session.execute(
                update(Notification)
                .where(Notification.id == int(item), Notification.status == "failed")
                .values(status="pending")
            )
            defer_jobs(session, [deliver_job(int(item))])
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
    if is_per_conversation(stage):
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
    if RunStatus(run.status).is_finished:
        _reopen(session, run, from_position=position)  # later phases consume this item's result: redo them
    elif RunStatus(run.status).may_start_batches and is_per_conversation(stage):
        phase_state = session.execute(
            select(RunPhase.state).where(RunPhase.run_id == run_id, RunPhase.phase == stage)
        ).scalar()
        if phase_state != "pending":  # a pending phase is started (with this item) by the advance job
            defer_jobs(
                session, [batch_job(run_id, run.generation, stage, [int(item)], queue=stage_queue(stage, run.params))]
            )
    # stopping/stopped runs: the item is pending; `resume` picks it up.


def retry_dead_letters(session: Session, *, run_id: int | None = None) -> int:
    """Retry every open dead letter (of one run, or all); returns how many this call re-enqueued."""
    query = select(DeadLetter.id).where(DeadLetter.retried_at.is_(None)).order_by(DeadLetter.id)
    if run_id is not None:
        query = query.where(DeadLetter.run_id == run_id)
    return sum(retry_dead_letter(session, letter_id) for letter_id in session.execute(query).scalars().all())


def purge_dead_letters(session: Session, *, run_id: int | None = None) -> int:
    """Delete dead letters that were already retried (history no longer needed); returns how many."""
    query = delete(DeadLetter).where(DeadLetter.retried_at.is_not(None))
    if run_id is not None:
        query = query.where(DeadLetter.run_id == run_id)
    return len(session.execute(query.returning(DeadLetter.id)).all())
