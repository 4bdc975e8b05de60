"""Defer procrastinate jobs inside the caller's SQLAlchemy transaction.

Jobs are rows of `procrastinate_jobs`; deferring them through procrastinate's own SQL
function (`procrastinate_defer_jobs_v1`, installed by migration 0002) in the same
transaction as the run state that motivates them makes "state changed" and "job queued"
one atomic fact: a crash between the two cannot lose a job or queue one for state that
was rolled back. Workers are woken by procrastinate's insert trigger (NOTIFY) at commit.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from threadline.pipeline.settings import QUEUE

_DEFER_SQL = text(
    """
    SELECT unnest(procrastinate_defer_jobs_v1(array_agg(
        ROW(:queue, t.task_name, 0, t.lock, t.queueing_lock, t.args, t.scheduled_at)::procrastinate_job_to_defer_v1
        ORDER BY t.ord)))
    FROM unnest(CAST(:task_names AS text[]), CAST(:locks AS text[]), CAST(:queueing_locks AS text[]),
                CAST(:args AS jsonb[]), CAST(:scheduled AS timestamptz[]))
         WITH ORDINALITY AS t(task_name, lock, queueing_lock, args, scheduled_at, ord)
    """
)


@dataclass(frozen=True)
class JobSpec:
    """One job to defer: task name, JSON arguments and optional locks/delay."""

    task_name: str
    args: dict[str, Any] = field(default_factory=dict)
    lock: str | None = None  # jobs sharing a lock run one at a time, in order
    queueing_lock: str | None = None  # at most one *queued* job per queueing lock
    delay_s: float = 0.0


def defer_jobs(session: Session, jobs: Sequence[JobSpec]) -> list[int]:
    """Insert `jobs` in the session's transaction; returns their ids (visible to workers at commit)."""
    if not jobs:
        return []
    now = datetime.now(UTC)
    params = {
        "queue": QUEUE,
        "task_names": [j.task_name for j in jobs],
        "locks": [j.lock for j in jobs],
        "queueing_locks": [j.queueing_lock for j in jobs],
        "args": [json.dumps(j.args) for j in jobs],
        "scheduled": [now + timedelta(seconds=j.delay_s) if j.delay_s > 0 else None for j in jobs],
    }
    return [int(i) for i in session.execute(_DEFER_SQL, params).scalars()]


def defer_once(session: Session, job: JobSpec) -> int | None:
    """Defer a job that carries a queueing lock; None when an identical one is already queued.

    Runs in a savepoint so the unique-violation of a duplicate leaves the caller's
    transaction usable.
    """
    assert job.queueing_lock, "defer_once needs a queueing_lock"
    try:
        with session.begin_nested():
            return defer_jobs(session, [job])[0]
    except IntegrityError:
        return None
