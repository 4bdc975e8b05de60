"""Run state machine: phase advance, counters, finishing, stop completion.

Every function here runs inside the caller's transaction and starts by locking the run
row (`SELECT ... FOR UPDATE`), so state changes of one run are serialized and the jobs
they defer (see `defer.py`) are queued atomically with them.

Status: queued -> running -> (stopping -> stopped) | succeeded | failed.
Phase: the first phase (in run order) not yet done; per-conversation phases are done when
no item is pending, whole-run phases when their job committed its result.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from threadline.config import EngineSettings, get_settings
from threadline.db.models import Message, Run, RunItem, RunPhase
from threadline.engine.defer import QUEUE, TASK_PREFIX, JobSpec, defer_jobs, defer_once
from threadline.engine.run_end import announce_run_end
from threadline.engine.stage import PerConversationStage, get_stage, is_per_conversation, stage_queue
from threadline.engine.status import RunStatus
from threadline.exporters.notifications import has_channels

logger = logging.getLogger(__name__)

ADVANCE_TASK = TASK_PREFIX + "advance"
BATCH_TASK = TASK_PREFIX + "batch"
WHOLE_TASK = TASK_PREFIX + "whole"
NOTIFY_TASK = TASK_PREFIX + "notify"  # a finished run's digest to every notification channel
DELIVER_TASK = TASK_PREFIX + "deliver"  # one stored digest to its channel again (`dlq retry`)
SCHEDULE_TICK_TASK = TASK_PREFIX + "schedule_tick"  # procrastinate periodic task: queue the due schedules
SCHEDULED_TASK = TASK_PREFIX + "scheduled"  # one scheduled sync -> run of a scope (`engine.schedules`)
SCHEDULE_TICK_CRON = "* * * * * */5"  # every 5 s (6th field: seconds): a due schedule starts at most 5 s late
ITEM_COUNTERS = ("total", "done", "skipped", "dead", "retries", "computed", "reused")


def lock_run(session: Session, run_id: int) -> Run | None:
    """The run row, locked until the end of the transaction (fresh values, not the identity map's)."""
    return session.execute(
        select(Run).where(Run.id == run_id).with_for_update().execution_options(populate_existing=True)
    ).scalar_one_or_none()


def add_counters(run: Run, phase: str, values: dict[str, Any]) -> None:
    """Add integer `values` to the run's counters of `phase` (caller holds the run lock)."""
    counters = dict(run.counters or {})
    current = dict(counters.get(phase, {}))
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            current[key] = value
        else:
            current[key] = current.get(key, 0) + value
    counters[phase] = current
    run.counters = counters


def set_counters(run: Run, phase: str, values: dict[str, Any]) -> None:
    """Replace non-item keys of a phase's counters with a whole-run stage's result."""
    counters = dict(run.counters or {})
    counters[phase] = {**counters.get(phase, {}), **values}
    run.counters = counters


def advance_job(run_id: int, generation: int) -> JobSpec:
    """The idempotent job that moves a run to its next phase (at most one queued per run)."""
    lock = f"threadline-run-{run_id}-advance"  # advances of one run execute one at a time
    return JobSpec(
        ADVANCE_TASK, {"run_id": run_id, "generation": generation}, lock=lock, queueing_lock=f"{lock}-g{generation}"
    )


def batch_job(
    run_id: int, generation: int, stage: str, ids: list[int], delay_s: float = 0.0, queue: str | None = None
) -> JobSpec:
    """A batch of a per-conversation stage, on `queue` (the stage's choice for the run) or the default one."""
    return JobSpec(
        BATCH_TASK,
        {"run_id": run_id, "generation": generation, "stage": stage, "ids": ids},
        delay_s=delay_s,
        queue=queue or QUEUE,
    )


def whole_job(run_id: int, generation: int, phase: str, queue: str | None = None) -> JobSpec:
    """The one job of a whole-run stage, on `queue` (the stage's choice for the run) or the default one."""
    return JobSpec(
        WHOLE_TASK,
        {"run_id": run_id, "generation": generation, "phase": phase},
        lock=f"threadline-run-{run_id}-whole",
        queueing_lock=f"threadline-run-{run_id}-{phase}-g{generation}",
        queue=queue or QUEUE,
    )


def notify_job(run_id: int) -> JobSpec:
    """The job that sends a finished run's digest (at most one queued per run)."""
    return JobSpec(NOTIFY_TASK, {"run_id": run_id}, queueing_lock=f"threadline-run-{run_id}-notify")


def deliver_job(notification_id: int) -> JobSpec:
    """The job that sends one stored digest again."""
    return JobSpec(DELIVER_TASK, {"notification_id": notification_id})


def request_notify(session: Session, run: Run) -> None:
    """Queue the run's digest when any notification channel exists (in the caller's transaction)."""
    if has_channels(session):
        defer_once(session, notify_job(run.id))


def request_advance(session: Session, run: Run) -> None:
    """Queue an advance of `run` (dropped when one is already queued: it will see this state)."""
    defer_once(session, advance_job(run.id, run.generation))


def pending_count(session: Session, run_id: int, stage: str) -> int:
    return session.execute(
        select(func.count())
        .select_from(RunItem)
        .where(RunItem.run_id == run_id, RunItem.stage == stage, RunItem.state == "pending")
    ).scalar_one()


def default_batch_size(stage: str, settings: EngineSettings) -> int | None:
    """Conversations per batch job of `stage` when the run does not set `batch_size`; None: sized by characters."""
    found = get_stage(stage)
    return None if isinstance(found, PerConversationStage) and found.local else settings.provider_batch_size


def split_by_characters(ids: Sequence[int], chars: Sequence[int], settings: EngineSettings) -> list[list[int]]:
    """Consecutive batches of `ids` holding about `local_batch_chars` characters each (at most `max_batch_size` ids).

    `chars[i]` is the customer-text length of `ids[i]`, counted up to `model_input_chars`.
    A batch always holds at least one id.
    """
    batches: list[list[int]] = []
    current: list[int] = []
    budget = 0
    for conversation_id, length in zip(ids, chars, strict=True):
        cost = min(max(int(length), 1), settings.model_input_chars)
        if current and (budget + cost > settings.local_batch_chars or len(current) >= settings.max_batch_size):
            batches.append(current)
            current, budget = [], 0
        current.append(conversation_id)
        budget += cost
    if current:
        batches.append(current)
    return batches


def _batch_jobs_for_pending(session: Session, run: Run, stage: str) -> list[JobSpec]:
    """Batch jobs over the stage's pending items, similar text lengths together.

    Models pad every text of a batch to its longest one, so batching conversations of
    similar customer-text length halves the embedding time of mixed-length data. A run's
    `batch_size` fixes the count per job; otherwise provider stages take
    `provider_batch_size` and local stages about `local_batch_chars` characters per job.
    """
    settings = get_settings().engine
    size = (run.params or {}).get("batch_size") or default_batch_size(stage, settings)
    customer_chars = (
        select(func.coalesce(func.sum(func.length(Message.text)), 0))
        .where(Message.conversation_id == RunItem.conversation_id, Message.author_role == "customer")
        .scalar_subquery()
    )
    rows = session.execute(
        select(RunItem.conversation_id, customer_chars)
        .where(RunItem.run_id == run.id, RunItem.stage == stage, RunItem.state == "pending")
        .order_by(customer_chars, RunItem.conversation_id)
    ).all()
    ids = [int(cid) for cid, _ in rows]
    if size is None:
        batches = split_by_characters(ids, [int(chars) for _, chars in rows], settings)
    else:
        batches = [ids[i : i + int(size)] for i in range(0, len(ids), int(size))]
    queue = stage_queue(stage, run.params)
    return [batch_job(run.id, run.generation, stage, batch, queue=queue) for batch in batches]


def advance(session: Session, run_id: int, generation: int, *, job_id: int | None = None) -> str:
    """Move the run forward by at most one phase start; returns what happened (for logs and tests)."""
    run = lock_run(session, run_id)
    if run is None or run.generation != generation:
        return "stale"
    if run.status == RunStatus.STOPPING:
        return "stopped" if try_finish_stop(session, run_id, exclude_job_id=job_id) else "stopping"
    if not RunStatus(run.status).may_start_batches:
        return run.status
    if run.status == RunStatus.QUEUED:
        run.status = RunStatus.RUNNING
        run.started_at = func.now()
    phases = (
        session.execute(
            select(RunPhase)
            .where(RunPhase.run_id == run_id)
            .order_by(RunPhase.position)
            .execution_options(populate_existing=True)
        )
        .scalars()
        .all()
    )
    for phase in phases:
        if phase.state == "done":
            continue
        if is_per_conversation(phase.phase):
            if pending_count(session, run_id, phase.phase) == 0:
                phase.state = "done"
                phase.started_at = phase.started_at or func.now()
                phase.finished_at = func.now()
                continue
            if phase.state == "pending":
                phase.state, phase.started_at, run.phase = "active", func.now(), phase.phase
                jobs = _batch_jobs_for_pending(session, run, phase.phase)
                defer_jobs(session, jobs)
                logger.info("run %d: phase %s started with %d batch jobs", run_id, phase.phase, len(jobs))
                return f"started {phase.phase}"
            return f"waiting {phase.phase}"
        if phase.state == "pending":
            phase.state, phase.started_at, run.phase = "active", func.now(), phase.phase
            defer_once(session, whole_job(run_id, generation, phase.phase, stage_queue(phase.phase, run.params)))
            logger.info("run %d: phase %s started", run_id, phase.phase)
            return f"started {phase.phase}"
        return f"waiting {phase.phase}"
    finish(session, run)
    return run.status


def dead_item_count(session: Session, run_id: int) -> tuple[int, int]:
    """(dead items, all items) over the run's per-conversation stages."""
    dead, total = session.execute(
        select(func.count().filter(RunItem.state == "dead"), func.count()).where(RunItem.run_id == run_id)
    ).one()
    return int(dead), int(total)


def finish(session: Session, run: Run) -> None:
    """All phases done: succeeded, or failed when dead letters exceed the configured share."""
    settings = get_settings().engine
    dead, total = dead_item_count(session, run.id)
    share = dead / total if total else 0.0
    run.phase = None
    run.finished_at = func.now()
    if share > settings.max_dead_share:
        run.status = RunStatus.FAILED
        run.error = f"{dead} of {total} items dead-lettered ({share:.1%} > {settings.max_dead_share:.1%})"
    else:
        run.status = RunStatus.SUCCEEDED
    logger.info("run %d %s (%d dead-lettered items)", run.id, run.status, dead)
    request_notify(session, run)
    announce_run_end(session, run.id)


def try_finish_stop(session: Session, run_id: int, *, exclude_job_id: int | None = None) -> bool:
    """`stopping` -> `stopped` when no job of this run is still in flight (atomic, one statement).

    In flight = a procrastinate job of this run in status `doing` (a dead worker's jobs stay
    `doing` until the stalled-job sweep requeues them; they then start, see the stop and end).
    """
    row = session.execute(
        text(
            """
            UPDATE runs SET status = 'stopped'
             WHERE id = :run_id AND status = 'stopping'
               AND NOT EXISTS (
                   SELECT 1 FROM procrastinate_jobs j
                    WHERE j.status = 'doing' AND j.task_name LIKE :prefix
                      AND j.args->>'run_id' = CAST(:run_id AS text)
                      AND j.id <> :exclude)
            RETURNING id
            """
        ),
        {"run_id": run_id, "prefix": TASK_PREFIX + "%", "exclude": exclude_job_id or -1},
    ).first()
    if row is not None:
        logger.info("run %d stopped", run_id)
        announce_run_end(session, run_id)
    return row is not None


def stopping_run_ids(session: Session) -> list[int]:
    return list(session.execute(select(Run.id).where(Run.status == RunStatus.STOPPING)).scalars())
