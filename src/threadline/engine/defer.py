"""Defer procrastinate jobs inside the caller's SQLAlchemy transaction.

Jobs are rows of `procrastinate_jobs`; deferring them in the same transaction as the run
state that motivates them makes "state changed" and "job queued" one atomic fact: a crash
between the two cannot lose a job or queue one for state that was rolled back. We use
procrastinate's documented API for that (`configure(connection=...)` then `batch_defer`),
on the psycopg connection under the session's transaction. Workers are woken by
procrastinate's insert trigger (NOTIFY) at commit.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import procrastinate
import psycopg
from procrastinate.exceptions import AlreadyEnqueued
from sqlalchemy.orm import Session

QUEUE = "threadline"  # procrastinate queue of every Threadline job: one queue, workers listen to it
TASK_PREFIX = "threadline."  # task-name prefix: lets SQL find this project's jobs among procrastinate's


@dataclass(frozen=True)
class JobSpec:
    """One job to defer: task name, JSON arguments and optional locks/delay."""

    task_name: str
    args: dict[str, Any] = field(default_factory=dict)
    lock: str | None = None  # jobs sharing a lock run one at a time, in order
    queueing_lock: str | None = None  # at most one *queued* job per queueing lock
    delay_s: float = 0.0
    queue: str = QUEUE  # a stage may route its batches to a queue only able workers serve

    def options(self) -> tuple[str, str | None, str | None, float, str]:
        return (self.task_name, self.lock, self.queueing_lock, self.delay_s, self.queue)


@lru_cache(maxsize=1)
def _deferring_app() -> procrastinate.App:
    """An app that only defers on connections it is handed (it never opens a pool of its own)."""
    return procrastinate.App(connector=procrastinate.SyncPsycopgConnector())


def _connection(session: Session) -> psycopg.Connection[Any]:
    connection = session.connection().connection.driver_connection
    assert isinstance(connection, psycopg.Connection)
    return connection


def defer_jobs(session: Session, jobs: Sequence[JobSpec]) -> list[int]:
    """Insert `jobs` in the session's transaction; returns their ids (visible to workers at commit).

    Jobs with the same task and options go in one statement (`batch_defer`).
    """
    if not jobs:
        return []
    connection = _connection(session)
    ids: dict[int, int] = {}
    order = sorted(range(len(jobs)), key=lambda i: jobs[i].options())
    for options, group in itertools.groupby(order, key=lambda i: jobs[i].options()):
        positions = list(group)
        task_name, lock, queueing_lock, delay_s, queue = options
        deferrer = _deferring_app().configure_task(
            task_name,
            connection=connection,
            queue=queue,
            lock=lock,
            queueing_lock=queueing_lock,
            schedule_in={"seconds": delay_s} if delay_s > 0 else None,
        )
        for position, job_id in zip(positions, deferrer.batch_defer(*(jobs[i].args for i in positions)), strict=True):
            ids[position] = job_id
    return [ids[i] for i in range(len(jobs))]


def defer_once(session: Session, job: JobSpec) -> int | None:
    """Defer a job that carries a queueing lock; None when an identical one is already queued.

    Runs in a savepoint so the unique violation of a duplicate leaves the caller's
    transaction usable.
    """
    assert job.queueing_lock, "defer_once needs a queueing_lock"
    try:
        with session.begin_nested():
            return defer_jobs(session, [job])[0]
    except AlreadyEnqueued:
        return None
