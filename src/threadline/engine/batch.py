"""Job bodies: a per-conversation batch and a whole-run stage, independent of procrastinate.

A batch job (1) claims its still-pending items under the run lock, refusing to start when
the run is stopping, stopped or of an older generation; (2) runs the stage on them in a
savepoint; (3) records each item's outcome with `UPDATE ... WHERE state = 'pending'
RETURNING` together with the counters, dead letters and, when the phase has no pending
item left, the deferred advance job -- all in one transaction. Executing a batch twice
(a crashed worker's job taken over) therefore leaves the rows and counts of once.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Engine, any_, cast, func, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from threadline.config import EngineSettings, get_settings
from threadline.db.engine import session_scope
from threadline.db.models import DeadLetter, Run, RunItem, RunPhase
from threadline.engine.defer import defer_once
from threadline.engine.errors import PermanentError, RetryLater, backoff_delay_s, is_transient
from threadline.engine.lifecycle import (
    add_counters,
    advance_job,
    finish,
    lock_run,
    pending_count,
    request_advance,
    set_counters,
    try_finish_stop,
)
from threadline.engine.run_end import announce_run_end
from threadline.engine.stage import (
    BatchOutcome,
    ItemHook,
    PerConversationStage,
    StageContext,
    WholeRunStage,
    get_stage,
    item_hooks,
)
from threadline.engine.status import RunStatus

logger = logging.getLogger(__name__)

EXHAUSTED = "attempts exhausted"


@dataclass
class _Failure:
    error_class: str
    message: str
    transient: bool
    retry_after_s: float | None = None


def _failure(exc: BaseException) -> _Failure:
    return _Failure(
        type(exc).__name__,
        str(exc)[: get_settings().engine.max_error_chars] or type(exc).__name__,
        transient=is_transient(exc) and not isinstance(exc, PermanentError),
        retry_after_s=getattr(exc, "retry_after_s", None),
    )


def _ids_param(ids: Sequence[int]) -> ColumnElement[bool]:
    return any_(cast(list(ids), ARRAY(BigInteger)))


def _transition(
    session: Session, run_id: int, stage: str, ids: Sequence[int], state: str, reasons: dict[int, str] | None = None
) -> list[int]:
    """Move pending items to `state`; returns the ids this call moved (each id moves once, ever)."""
    if not ids:
        return []
    if reasons:
        moved = []
        for cid in ids:  # per-item reasons: one statement each (dead and skipped items are few)
            row = session.execute(
                update(RunItem)
                .where(
                    RunItem.run_id == run_id,
                    RunItem.stage == stage,
                    RunItem.conversation_id == cid,
                    RunItem.state == "pending",
                )
                .values(state=state, reason=reasons[cid], finished_at=func.clock_timestamp())
                .returning(RunItem.conversation_id)
            ).first()
            if row is not None:
                moved.append(int(row[0]))
        return moved
    return [
        int(cid)
        for cid in session.execute(
            update(RunItem)
            .where(
                RunItem.run_id == run_id,
                RunItem.stage == stage,
                RunItem.conversation_id == _ids_param(ids),
                RunItem.state == "pending",
            )
            .values(state=state, finished_at=func.clock_timestamp())
            .returning(RunItem.conversation_id)
        ).scalars()
    ]


def _dead_letter(session: Session, run_id: int, stage: str, item: str, failure: _Failure, attempts: int) -> None:
    session.add(
        DeadLetter(
            run_id=run_id,
            stage=stage,
            item=item,
            error_class=failure.error_class,
            error_message=failure.message,
            attempts=attempts,
        )
    )


def _claim(
    engine: Engine, run_id: int, generation: int, stage: str, ids: Sequence[int], job_id: int | None
) -> tuple[dict[int, int], dict[str, Any]] | None:
    """(pending items of this batch -> attempt number, run params), or None when the run must not start work.

    Reads the run under a share lock: claims of concurrent batches do not wait for each
    other, but a stop request (which takes the row exclusively) is ordered strictly
    before or after this claim, so no item starts after a stop was stored. The claim
    commits asynchronously (`synchronous_commit = off`): a database crash can only lose
    an attempt increment, and the batch's later result commit flushes it anyway.
    """
    claim = None
    stopping = False
    with session_scope(engine) as session:
        session.execute(text("SET LOCAL synchronous_commit TO OFF"))
        row = session.execute(
            select(Run.status, Run.generation, Run.params).where(Run.id == run_id).with_for_update(read=True)
        ).first()
        if row is None:
            return None
        status, run_generation, params = row
        if run_generation != generation or not RunStatus(status).may_start_batches:
            stopping = status == "stopping"
        else:
            rows = session.execute(
                update(RunItem)
                .where(
                    RunItem.run_id == run_id,
                    RunItem.stage == stage,
                    RunItem.conversation_id == _ids_param(ids),
                    RunItem.state == "pending",
                )
                .values(attempts=RunItem.attempts + 1, started_at=func.clock_timestamp())
                .returning(RunItem.conversation_id, RunItem.attempts)
            ).all()
            claimed = {int(cid): int(attempt) for cid, attempt in rows}
            if not claimed and pending_count(session, run_id, stage) == 0:
                defer_once(session, advance_job(run_id, generation))  # a re-run of a batch that committed, then died
            claim = (claimed, dict(params or {}))
    if stopping:
        with session_scope(engine) as session:
            try_finish_stop(session, run_id, exclude_job_id=job_id)
    return claim


def run_batch(
    engine: Engine,
    *,
    run_id: int,
    generation: int,
    stage: str,
    ids: Sequence[int],
    job_id: int | None = None,
    hooks: Sequence[ItemHook] | None = None,
    rng: random.Random | None = None,
) -> dict[str, int]:
    """Process one batch of a per-conversation stage; raises RetryLater when items await a retry.

    `hooks` (default: the registered item hooks) may fail items before the stage sees them.
    """
    settings = get_settings().engine
    hooks = item_hooks() if hooks is None else hooks
    stage_object = get_stage(stage)
    assert isinstance(stage_object, PerConversationStage), f"{stage} is not a per-conversation stage"
    claim = _claim(engine, run_id, generation, stage, ids, job_id)
    if claim is None or not claim[0]:
        return {"claimed": 0}
    claimed, run_params = claim
    failures: dict[int, _Failure] = {}
    ok: list[int] = []
    for cid in sorted(claimed):
        if claimed[cid] > settings.max_item_attempts:  # lost with its worker on every attempt: a poison item
            failures[cid] = _Failure(
                "WorkerLost", f"{EXHAUSTED}: the worker died on each of {claimed[cid] - 1} attempts", False
            )
            continue
        try:
            for hook in hooks:
                hook.check(stage, cid, claimed[cid])
            ok.append(cid)
        except Exception as exc:  # a hook raises TransientError or PermanentError
            failures[cid] = _failure(exc)
    with session_scope(engine) as session:
        # Asynchronous commit keeps the WAL flush out of the run-row lock (which serializes a run's
        # batches). Safe: WAL is replayed as a prefix, and procrastinate marks the job finished with a
        # later, synchronous commit; so a job recorded as finished always has its results, and a
        # database crash before that leaves the job `doing`, to be re-executed (batches are idempotent).
        session.execute(text("SET LOCAL synchronous_commit TO OFF"))
        outcome = BatchOutcome()
        if ok:
            try:
                with session.begin_nested():
                    outcome = stage_object.run(StageContext(session, run_id, run_params), ok)
            except Exception as exc:
                logger.warning("run %d %s batch of %d failed: %s", run_id, stage, len(ok), type(exc).__name__)
                failure = _failure(exc)
                failures.update({cid: failure for cid in ok})
                outcome = BatchOutcome()
        # Items the stage itself gave up on (bounded retries inside, e.g. LLM calls) are dead now.
        for cid, (error_class, message, _) in outcome.failed.items():
            failures[cid] = _Failure(error_class, message[: settings.max_error_chars], transient=False)
        retry_ids, delay, status = _record(session, run_id, stage, claimed, outcome, failures, settings, rng)
        if outcome.stop_reason:
            _stop_for(session, run_id, outcome.stop_reason)
            status = RunStatus.STOPPING
        if status == RunStatus.STOPPING and not retry_ids:
            try_finish_stop(session, run_id, exclude_job_id=job_id)
    if retry_ids:
        raise RetryLater(delay, len(retry_ids))
    return {"claimed": len(claimed), "done": len(outcome.done), "failed": len(failures)}


def _record(
    session: Session,
    run_id: int,
    stage: str,
    claimed: dict[int, int],
    outcome: BatchOutcome,
    failures: dict[int, _Failure],
    settings: EngineSettings,
    rng: random.Random | None,
) -> tuple[list[int], float, str]:
    """Store item outcomes, dead letters and counters under the run lock; returns (ids to retry, delay, run status).

    Items left pending in the stage = total - done - skipped - dead, read from the counters
    this transaction just updated under the run lock (a COUNT over run_items per batch
    would make a run quadratic in its size).
    """
    run = lock_run(session, run_id)
    assert run is not None
    done = _transition(session, run_id, stage, outcome.done, "done")
    skipped = _transition(session, run_id, stage, sorted(outcome.skipped), "skipped", outcome.skipped)
    dead_failures = {
        cid: f for cid, f in failures.items() if not f.transient or claimed[cid] >= settings.max_item_attempts
    }
    reasons = {
        cid: (f.message if not f.transient else f"{EXHAUSTED}: {f.message}")[: settings.max_error_chars]
        for cid, f in dead_failures.items()
    }
    dead = _transition(session, run_id, stage, sorted(dead_failures), "dead", reasons)
    for cid in dead:
        _dead_letter(session, run_id, stage, str(cid), dead_failures[cid], claimed[cid])
    retry = sorted(cid for cid in failures if cid not in dead_failures)
    computed = min(outcome.computed, len(done))  # a concurrent duplicate may have moved some items first
    add_counters(
        run,
        stage,
        {
            "done": len(done),
            "skipped": len(skipped),
            "dead": len(dead),
            "retries": len(retry),
            "computed": computed,
            "reused": len(done) - computed,
            **outcome.extra_counters,
        },
    )
    if run.phase is None and run.status == RunStatus.RUNNING:
        run.phase = stage
    c = run.counters[stage]
    if not retry and c["total"] - c["done"] - c["skipped"] - c["dead"] <= 0:
        request_advance(session, run)
    delay = 0.0
    if retry:
        attempt = max(claimed[cid] for cid in retry)
        retry_after = max((failures[cid].retry_after_s or 0.0 for cid in retry), default=0.0) or None
        delay = backoff_delay_s(attempt, settings.retry_base_delay_s, retry_after_s=retry_after, rng=rng)
    return retry, delay, run.status


def _stop_for(session: Session, run_id: int, reason: str) -> None:
    """Stop the run cleanly because a stage said so (e.g. the LLM budget): unfinished items stay pending."""
    run = lock_run(session, run_id)
    if run is not None and RunStatus(run.status).may_start_batches:
        run.status = RunStatus.STOPPING
        run.stop_requested_at = func.now()
        run.error = reason[: get_settings().engine.max_error_chars]
        logger.warning("run %d stopping: %s", run_id, reason)


def run_whole(
    engine: Engine,
    *,
    run_id: int,
    generation: int,
    phase: str,
    job_id: int | None = None,
    job_attempts: int = 0,
) -> dict[str, int]:
    """Run a whole-run stage once: its result, the phase's `done` and the next advance commit together."""
    settings = get_settings().engine
    stage_object = get_stage(phase)
    assert isinstance(stage_object, WholeRunStage), f"{phase} is not a whole-run stage"
    with session_scope(engine) as session:
        run = lock_run(session, run_id)
        if run is None or run.generation != generation or not RunStatus(run.status).may_start_batches:
            if run is not None and run.status == RunStatus.STOPPING:
                try_finish_stop(session, run_id, exclude_job_id=job_id)
            return {"ran": 0}
        run_params = run.params
    retry_delay: float | None = None
    with session_scope(engine) as session:
        state = session.execute(
            select(RunPhase.state).where(RunPhase.run_id == run_id, RunPhase.phase == phase).with_for_update()
        ).scalar_one_or_none()  # serializes duplicate executions; the second sees `done`
        if state != "active":
            return {"ran": 0}
        try:
            with session.begin_nested():
                result = stage_object.run(StageContext(session, run_id, dict(run_params or {})))
        except Exception as exc:
            failure = _failure(exc)
            logger.warning("run %d phase %s failed: %s", run_id, phase, failure.error_class)
            run = lock_run(session, run_id)
            assert run is not None
            attempt = job_attempts + 1
            if failure.transient and attempt < settings.max_item_attempts:
                add_counters(run, phase, {"retries": 1})
                retry_delay = backoff_delay_s(attempt, settings.retry_base_delay_s, retry_after_s=failure.retry_after_s)
            else:
                _dead_letter(session, run_id, phase, f"run:{run_id}", failure, attempt)
                add_counters(run, phase, {"dead": 1})
                session.execute(
                    update(RunPhase).where(RunPhase.run_id == run_id, RunPhase.phase == phase).values(state="pending")
                )
                run.status, run.phase, run.finished_at = RunStatus.FAILED, None, func.now()
                announce_run_end(session, run_id)
                run.error = f"{phase}: {failure.error_class}: {failure.message}"[: settings.max_error_chars]
        else:
            run = lock_run(session, run_id)
            assert run is not None
            set_counters(run, phase, result)
            add_counters(run, phase, {"done": 1})
            session.execute(
                update(RunPhase)
                .where(RunPhase.run_id == run_id, RunPhase.phase == phase)
                .values(state="done", finished_at=func.clock_timestamp())  # now() is the transaction start
            )
            if run.status == RunStatus.STOPPING:
                try_finish_stop(session, run_id, exclude_job_id=job_id)
            else:
                request_advance(session, run)
    if retry_delay is not None:
        raise RetryLater(retry_delay, 1)
    return {"ran": 1}


__all__ = ["run_batch", "run_whole", "finish"]
