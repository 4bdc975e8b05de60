"""The procrastinate app: Threadline's tasks, their retry strategy, and the connector.

Tasks (on queue `threadline` unless said otherwise, arguments are JSON):
- `threadline.advance {run_id, generation}`: start the next phase / finish the run.
- `threadline.batch {run_id, generation, stage, ids}`: one per-conversation batch; on the queue its
  stage names for the run (`PerConversationStage.queue`, e.g. `threadline.embed.onnx-int8`), which
  only workers able to run it serve (`PerConversationStage.worker_queues`).
- `threadline.whole {run_id, generation, phase}`: a whole-run stage (themes, stories); on the queue its
  stage names for the run (`WholeRunStage.queue`: themes and stories embed text, so they follow the
  run's embedding backend like its embed batches).
- `threadline.notify {run_id}`: a finished run's digest to every notification channel.
- `threadline.deliver {notification_id}`: one stored digest again (`dlq retry` of `notify.<channel>`).
- `threadline.schedule_tick` and `threadline.scheduled`: schedules, a blueprint of their own
  (`threadline.engine.schedules.tasks`) that the worker adds (it needs the run machinery).
- `threadline.sync {source_id}`: one connector sync of a source (see `threadline.engine.sync`);
  not retried by procrastinate (the client retries each request; a refused token stays refused).
- `threadline.knowledge_sync {knowledge_source_id}`: one sync of a knowledge source (see
  `threadline.engine.knowledge_sync`); run again later only while another sync holds the source.

Tasks are synchronous (SQLAlchemy + CPU work); procrastinate runs them in worker threads,
so the worker's event loop only fetches jobs, heartbeats and sweeps.

A test or script starts a worker with `threadline worker --concurrency N` and the
environment variable THREADLINE_DATABASE_URL pointing at the database (see cli/runs.py),
or in-process with `threadline.engine.worker.run_worker`.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import procrastinate
from procrastinate import JobContext, RetryDecision
from procrastinate.retry import BaseRetryStrategy
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from threadline.config import get_settings
from threadline.db.engine import get_engine, resolve_database_url, session_scope
from threadline.engine import batch as batch_module
from threadline.engine.defer import QUEUE
from threadline.engine.errors import RetryLater, backoff_delay_s
from threadline.engine.knowledge_sync import (
    KNOWLEDGE_SYNC_TASK,
    MAX_BUSY_ATTEMPTS,
    KnowledgeSyncWaiting,
    run_knowledge_sync_job,
)
from threadline.engine.lifecycle import ADVANCE_TASK, BATCH_TASK, DELIVER_TASK, NOTIFY_TASK, WHOLE_TASK, advance
from threadline.engine.sync import SYNC_TASK, run_sync_job
from threadline.exporters.notifications import deliver, notify_run

logger = logging.getLogger(__name__)

POOL_MIN_SIZE = 1  # connections kept open by procrastinate's pool in each process
POOL_EXTRA = 3  # connections beyond concurrency: LISTEN, fetch and heartbeat share these


class ThreadlineRetry(BaseRetryStrategy):
    """RetryLater: re-run after its delay (item attempts bound it). Other errors: backoff, bounded."""

    def get_retry_decision(self, *, exception: BaseException, job: procrastinate.jobs.Job) -> RetryDecision | None:
        if isinstance(exception, RetryLater):
            return _retry_in(exception.delay_s)
        settings = get_settings().engine
        if job.attempts + 1 >= settings.max_job_attempts:
            return None
        return _retry_in(backoff_delay_s(job.attempts + 1, settings.retry_base_delay_s))


class WhileBusyRetry(BaseRetryStrategy):
    """Run a knowledge sync job again only while another sync holds its source (bounded); failures are final."""

    def get_retry_decision(self, *, exception: BaseException, job: procrastinate.jobs.Job) -> RetryDecision | None:
        if isinstance(exception, KnowledgeSyncWaiting) and job.attempts + 1 < MAX_BUSY_ATTEMPTS:
            return _retry_in(exception.delay_s)
        return None


def _retry_in(seconds: float) -> RetryDecision:
    """Retry after `seconds` (fractions kept: procrastinate's `retry_in` takes whole seconds only)."""
    return RetryDecision(retry_at=datetime.now(UTC) + timedelta(seconds=seconds))


def conninfo_from_url(sqlalchemy_url: str) -> str:
    """libpq conninfo (URI form) for a SQLAlchemy URL, Unix-socket `?host=/dir` URLs included."""
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


class _Engines:
    """The SQLAlchemy engine jobs of this process use (set by the worker launcher)."""

    lock = threading.Lock()
    engine: Engine | None = None


def set_job_engine(engine: Engine) -> None:
    with _Engines.lock:
        _Engines.engine = engine


def job_engine() -> Engine:
    with _Engines.lock:
        if _Engines.engine is None:
            _Engines.engine = get_engine()
        return _Engines.engine


tasks = procrastinate.Blueprint()
_RETRY = ThreadlineRetry()


@tasks.task(name=ADVANCE_TASK, queue=QUEUE, pass_context=True, retry=_RETRY)
def advance_task(context: JobContext, run_id: int, generation: int) -> str:
    with session_scope(job_engine()) as session:
        return advance(session, run_id, generation, job_id=context.job.id)


@tasks.task(name=BATCH_TASK, queue=QUEUE, pass_context=True, retry=_RETRY)
def batch_task(context: JobContext, run_id: int, generation: int, stage: str, ids: list[int]) -> dict[str, int]:
    return batch_module.run_batch(
        job_engine(), run_id=run_id, generation=generation, stage=stage, ids=ids, job_id=context.job.id
    )


@tasks.task(name=WHOLE_TASK, queue=QUEUE, pass_context=True, retry=_RETRY)
def whole_task(context: JobContext, run_id: int, generation: int, phase: str) -> dict[str, int]:
    return batch_module.run_whole(
        job_engine(),
        run_id=run_id,
        generation=generation,
        phase=phase,
        job_id=context.job.id,
        job_attempts=context.job.attempts,
    )


@tasks.task(name=SYNC_TASK, queue=QUEUE, pass_context=True)
def sync_task(context: JobContext, source_id: int) -> dict[str, int]:
    """One connector sync of `source_id` (no retry strategy: a failure ends the job `failed`, see `engine.sync`)."""
    assert context.job.id is not None  # a job being executed has been stored
    return run_sync_job(job_engine(), source_id, job_id=context.job.id)


@tasks.task(name=KNOWLEDGE_SYNC_TASK, queue=QUEUE, pass_context=True, retry=WhileBusyRetry())
def knowledge_sync_task(context: JobContext, knowledge_source_id: int) -> dict[str, int]:
    """One sync of a knowledge source (see `engine.knowledge_sync`: waits out another sync, never retries a failure)."""
    assert context.job.id is not None  # a job being executed has been stored
    return run_knowledge_sync_job(job_engine(), knowledge_source_id, job_id=context.job.id)


@tasks.task(name=NOTIFY_TASK, queue=QUEUE, retry=_RETRY)
def notify_task(run_id: int) -> dict[str, int]:
    """A finished run's digest to every channel (a failed delivery is a dead letter, not a job failure)."""
    outcomes = notify_run(job_engine(), run_id)
    return {action: sum(1 for o in outcomes if o.action == action) for action in ("delivered", "already", "failed")}


@tasks.task(name=DELIVER_TASK, queue=QUEUE, retry=_RETRY)
def deliver_task(notification_id: int) -> str:
    """One stored digest to its channel again (deferred by `dlq retry`)."""
    return deliver(job_engine(), notification_id).action


def get_app(
    connector: Any | None = None, *, sqlalchemy_url: str | None = None, concurrency: int = 1
) -> procrastinate.App:
    """A procrastinate App with Threadline's tasks, on `connector` or on a PsycopgConnector for `sqlalchemy_url`.

    Without either, the URL is threadline's own (THREADLINE_DATABASE_URL or the embedded server).
    The app must be opened (`with app.open():` / `async with app.open_async():`) before use.
    """
    if connector is None:
        if sqlalchemy_url is None:
            sqlalchemy_url = resolve_database_url(get_settings())
        connector = procrastinate.PsycopgConnector(
            conninfo=conninfo_from_url(sqlalchemy_url), min_size=POOL_MIN_SIZE, max_size=concurrency + POOL_EXTRA
        )
    app = procrastinate.App(connector=connector)
    app.add_tasks_from(tasks, namespace="")
    return app
