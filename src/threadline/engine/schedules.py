"""Schedules: periodic sync -> run -> deliver per scope, so digests go out without anyone at a keyboard.

A schedule names the sources of a scope and a period (`--every 1h`) or a cron expression
(`--cron "0 7 * * 1-5"`, UTC). Driving it is procrastinate's periodic tasks: every worker runs
procrastinate's periodic deferrer, which defers `threadline.schedule_tick` every
`SCHEDULE_TICK_CRON` (procrastinate records each tick once across workers). The tick claims
the due schedules (`next_at <= now()`, `FOR UPDATE SKIP LOCKED`, so two ticks never claim one),
moves `next_at` on and defers one `threadline.scheduled {schedule_id}` job per claim in the
same transaction: a crash cannot lose or double a due run.

A period whose previous scheduled run is still going is skipped (runs of one scope never pile
up). The scheduled job syncs each source of the scope whose connector syncs (in the job, as
`threadline sync` would), then enqueues the scope's run. Delivery follows the run: a finished
run queues its digest (`threadline.notify`), a failed run sends a `run.failed` digest. A failed
sync, or a run that cannot be created, sends a `schedule.failed` digest with the one-line
error, and is kept on the schedule (`last_error`); the next period tries again.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import procrastinate
from croniter import croniter
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from threadline.connectors.base import ConnectorError, get_connector
from threadline.connectors.sources import SourceError, sync_source
from threadline.db.engine import session_scope
from threadline.db.models import Run, Schedule, Source
from threadline.engine import runs  # module, not name: runs -> worker -> jobs -> schedules is a cycle
from threadline.engine.defer import QUEUE, JobSpec, defer_jobs
from threadline.engine.errors import RunError
from threadline.engine.jobs import job_engine
from threadline.engine.lifecycle import SCHEDULE_TICK_CRON, SCHEDULE_TICK_TASK, SCHEDULED_TASK
from threadline.engine.status import RunStatus
from threadline.engine.sync import safe_error
from threadline.exporters.notifications import failure_digest, notify_event
from threadline.registry import UnknownPlugin

logger = logging.getLogger(__name__)

MIN_PERIOD_S = 1  # s: shortest `--every`; the tick's 5 s bounds how often a schedule really fires
MAX_CLAIMED_PER_TICK = 100  # schedules started by one tick: the rest are due still and go on the next
_PERIOD = re.compile(r"^(\d+)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class ScheduleError(ValueError):
    """A schedule cannot be added or found as asked; the message says why."""


class UnknownScheduleSource(ScheduleError, LookupError):
    """A source named in the schedule does not exist."""


def parse_every(value: str) -> int:
    """Seconds in a period such as `30s`, `15m`, `1h`, `1d` (`ScheduleError` otherwise)."""
    match = _PERIOD.match(value.strip().lower())
    if match is None:
        raise ScheduleError(f"--every {value!r}: use a number and a unit, e.g. 30s, 15m, 1h, 1d")
    seconds = int(match.group(1)) * _UNIT_S[match.group(2)]
    if seconds < MIN_PERIOD_S:
        raise ScheduleError(f"--every must be at least {MIN_PERIOD_S}s")
    return seconds


def next_due(every_s: int | None, cron: str | None, after: datetime) -> datetime:
    """When a schedule is due next after `after` (UTC)."""
    if cron:
        nxt: datetime = croniter(cron, after).get_next(datetime)
        return nxt if nxt.tzinfo else nxt.replace(tzinfo=UTC)
    assert every_s is not None
    return after + timedelta(seconds=every_s)


def schedule_view(schedule: Schedule) -> dict[str, Any]:
    return {
        "id": schedule.id,
        "sources": list(schedule.source_names),
        "every_s": schedule.every_s,
        "cron": schedule.cron,
        "next_at": schedule.next_at.isoformat(),
        "last_started_at": schedule.last_started_at.isoformat() if schedule.last_started_at else None,
        "last_run_id": schedule.last_run_id,
        "last_error": schedule.last_error,
    }


def add_schedule(
    session: Session, sources: Sequence[str], *, every: str | None = None, cron: str | None = None
) -> Schedule:
    """Schedule the scope of `sources` (one schedule per scope: adding again replaces its timing)."""
    names = sorted(set(sources))
    if not names:
        raise ScheduleError("name at least one --source")
    known = set(session.execute(select(Source.name).where(Source.name.in_(names))).scalars())
    missing = [n for n in names if n not in known]
    if missing:
        raise UnknownScheduleSource(f"no source named {', '.join(map(repr, missing))}; see `threadline sources list`")
    if (every is None) == (cron is None):
        raise ScheduleError("give --every or --cron, not both nor neither")
    every_s = parse_every(every) if every is not None else None
    if cron is not None and not croniter.is_valid(cron):
        raise ScheduleError(f"--cron {cron!r} is not a valid cron expression")
    key = ",".join(names)
    schedule = session.execute(select(Schedule).where(Schedule.key == key).with_for_update()).scalar_one_or_none()
    if schedule is None:
        schedule = Schedule(key=key, source_names=names)
        session.add(schedule)
    schedule.every_s, schedule.cron = every_s, cron
    schedule.next_at = next_due(every_s, cron, datetime.now(UTC))
    session.flush()
    return schedule


def list_schedules(session: Session) -> list[dict[str, Any]]:
    return [schedule_view(s) for s in session.execute(select(Schedule).order_by(Schedule.id)).scalars()]


def remove_schedule(session: Session, schedule_id: int) -> bool:
    return (
        session.execute(delete(Schedule).where(Schedule.id == schedule_id).returning(Schedule.id)).first() is not None
    )


def scheduled_job(schedule_id: int) -> JobSpec:
    return JobSpec(SCHEDULED_TASK, {"schedule_id": schedule_id}, lock=f"{SCHEDULED_TASK}-{schedule_id}")


def claim_due(session: Session, now: datetime | None = None) -> list[int]:
    """Claim the due schedules: move each one's `next_at` on and queue its job (the caller commits)."""
    current = now or datetime.now(UTC)
    due = list(
        session.execute(
            select(Schedule)
            .where(Schedule.next_at <= current)
            .order_by(Schedule.next_at)
            .limit(MAX_CLAIMED_PER_TICK)
            .with_for_update(skip_locked=True)
        ).scalars()
    )
    for schedule in due:
        schedule.next_at = next_due(schedule.every_s, schedule.cron, max(current, schedule.next_at))
    defer_jobs(session, [scheduled_job(s.id) for s in due])
    return [s.id for s in due]


@dataclass
class ScheduledOutcome:
    schedule_id: int
    run_id: int | None = None
    error: str | None = None


def _syncable(kind: str) -> bool:
    try:
        return get_connector(kind).syncable
    except UnknownPlugin:
        return False


def run_schedule(engine: Engine, schedule_id: int) -> ScheduledOutcome:
    """Body of `threadline.scheduled`: sync the scope's sources, then enqueue its run; a failure notifies."""
    with Session(engine) as session:
        schedule = session.get(Schedule, schedule_id)
        if schedule is None:
            return ScheduledOutcome(schedule_id, error="schedule removed")
        names = list(schedule.source_names)
        if schedule.last_run_id is not None:
            last = session.get(Run, schedule.last_run_id)
            if last is not None and not RunStatus(last.status).is_finished:
                logger.info("schedule %d: run %d still going, this period is skipped", schedule_id, last.id)
                return ScheduledOutcome(schedule_id, error="previous run still going")
        sources = list(session.execute(select(Source.id, Source.name, Source.kind).where(Source.name.in_(names))))
    started = datetime.now(UTC)
    for source_id, name, kind in sources:
        if not _syncable(kind):
            continue
        try:
            sync_source(engine, source_id)
        except (ConnectorError, SourceError) as exc:
            return _failed(engine, schedule_id, names, safe_error(exc, None, f"source {name}"), started)
    try:
        with Session(engine) as session, session.begin():
            run = runs.create_run(session, sources=names)
            run_id = run.id
            schedule = session.get(Schedule, schedule_id)
            if schedule is not None:
                schedule.last_started_at, schedule.last_run_id, schedule.last_error = started, run_id, None
    except RunError as exc:
        return _failed(engine, schedule_id, names, f"run not started: {exc}", started)
    logger.info("schedule %d: run %d queued", schedule_id, run_id)
    return ScheduledOutcome(schedule_id, run_id=run_id)


def _failed(engine: Engine, schedule_id: int, names: list[str], error: str, started: datetime) -> ScheduledOutcome:
    logger.warning("schedule %d failed: %s", schedule_id, error)
    with Session(engine) as session, session.begin():
        schedule = session.get(Schedule, schedule_id)
        if schedule is not None:
            schedule.last_started_at, schedule.last_error = started, error
    digest = failure_digest(
        "schedule.failed",
        f"Threadline: the scheduled run of {', '.join(names)} failed",
        f"schedule {schedule_id}, started {started.isoformat()}",
        error,
        run_id=None,
    )
    notify_event(engine, f"schedule:{schedule_id}:{started.isoformat()}", digest, run_id=None)
    return ScheduledOutcome(schedule_id, error=error)


tasks = procrastinate.Blueprint()  # added to the worker's app by `threadline.engine.worker`


@tasks.periodic(cron=SCHEDULE_TICK_CRON)
@tasks.task(name=SCHEDULE_TICK_TASK, queue=QUEUE, queueing_lock=SCHEDULE_TICK_TASK)
def schedule_tick_task(timestamp: int) -> int:
    """procrastinate's periodic deferrer runs this every few seconds: queue the due schedules' jobs."""
    with session_scope(job_engine()) as session:
        return len(claim_due(session))


@tasks.task(name=SCHEDULED_TASK, queue=QUEUE)
def scheduled_task(schedule_id: int) -> dict[str, Any]:
    """One scheduled sync -> run of a scope (the run's end queues the digest)."""
    outcome = run_schedule(job_engine(), schedule_id)
    return {"run_id": outcome.run_id, "error": outcome.error}
