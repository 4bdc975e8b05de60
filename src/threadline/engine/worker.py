"""Running workers: a standalone `threadline worker`, or an in-process one for `threadline run`.

Besides procrastinate's own loop (fetch, heartbeat, graceful shutdown) every worker runs
a maintenance sweep every MAINTENANCE_INTERVAL_S seconds:
- stalled-job takeover: jobs in `doing` whose worker has not sent a heartbeat for
  `stalled_after_s` seconds (it was SIGKILLed, lost its machine, ...) are put back to
  `todo` with `retry_job`; batches are idempotent, so re-running one is safe. Two workers
  sweeping at once is harmless: the second `retry_job` finds the job no longer `doing`.
- stop completion: `stopping` runs with no job in flight become `stopped`.
Pipeline work runs in worker threads (sync tasks); the event loop only coordinates.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

import procrastinate
from sqlalchemy import Engine

from threadline.config import get_settings
from threadline.db.engine import session_scope
from threadline.engine import schedules  # module, not names: schedules -> runs -> worker is a cycle
from threadline.engine.defer import QUEUE
from threadline.engine.jobs import get_app, set_job_engine
from threadline.engine.lifecycle import stopping_run_ids, try_finish_stop
from threadline.engine.stage import STAGES, extra_worker_queues

logger = logging.getLogger(__name__)


def served_queues() -> list[str]:
    """The default queue plus the stage queues this process can serve (deciding may load and check a model)."""
    return [QUEUE, *(q for q in extra_worker_queues() if q != QUEUE)]


async def requeue_stalled_jobs(app: procrastinate.App, stalled_after_s: float, queues: Sequence[str] = (QUEUE,)) -> int:
    """Put jobs of dead workers on `queues` back in their queue; returns how many this call requeued."""
    stalled: list[Any] = []
    for queue in queues:
        stalled.extend(await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=stalled_after_s, queue=queue))
    requeued = 0
    for job in stalled:
        try:
            await app.job_manager.retry_job(job)
            requeued += 1
            logger.warning("requeued job %s of a stalled worker", job.id)
        except Exception as exc:  # another worker's sweep got there first
            logger.debug("job %s not requeued: %s", job.id, exc)
    return requeued


def finish_stopped_runs(engine: Engine) -> int:
    """Mark `stopping` runs with nothing in flight as `stopped`; returns how many."""
    finished = 0
    with session_scope(engine) as session:
        run_ids = stopping_run_ids(session)
    for run_id in run_ids:
        with session_scope(engine) as session:
            finished += try_finish_stop(session, run_id)
    return finished


async def _maintenance(
    app: procrastinate.App, engine: Engine, stalled_after_s: float, interval_s: float, queues: Sequence[str]
) -> None:
    while True:
        try:
            await requeue_stalled_jobs(app, stalled_after_s, queues)
            await asyncio.to_thread(finish_stopped_runs, engine)
        except Exception:
            logger.exception("maintenance sweep failed; retrying in %.0fs", interval_s)
        await asyncio.sleep(interval_s)


async def run_worker_async(
    engine: Engine,
    *,
    concurrency: int = 1,
    heartbeat_s: float | None = None,
    stalled_after_s: float | None = None,
    until: Callable[[], bool] | None = None,
    poll_s: float | None = None,
    wake: Callable[[float], object] | None = None,
    name: str | None = None,
    install_signal_handlers: bool = True,
    queues: Sequence[str] | None = None,
) -> None:
    """Run a worker on `engine`'s database until a signal, or until `until()` returns True.

    `until` is polled (in a thread) every `poll_s` seconds; when it is true the worker
    shuts down gracefully, finishing its in-flight jobs. `wake(timeout_s)`, when given,
    replaces the sleep between polls: it blocks (in a thread) until something worth polling
    for happens or the timeout passes (e.g. `RunEndListener.wait`). Timings default to the settings.
    Every registered stage is imported first, so their libraries join the long-lived heap
    that is exempted from garbage collection once the model is loaded (`threadline.heap`).
    """
    settings = get_settings().engine
    heartbeat_s = heartbeat_s or settings.heartbeat_interval_s
    stalled_after_s = stalled_after_s or settings.stalled_worker_timeout_s
    poll_s = poll_s or settings.worker_poll_interval_s
    STAGES.names()
    # The default queue plus the stage queues this process can serve (e.g. the embedding backends it
    # provides; deciding may load a model). Jobs on other queues are left to workers that serve them.
    if queues is None:
        queues = await asyncio.to_thread(served_queues)
    logger.info("worker serves queues %s", ", ".join(queues))
    set_job_engine(engine)
    app = get_app(sqlalchemy_url=engine.url.render_as_string(hide_password=False), concurrency=concurrency)
    app.add_tasks_from(schedules.tasks, namespace="")  # the scheduler tick (a periodic task) and scheduled runs
    async with app.open_async():
        worker = asyncio.create_task(
            app.run_worker_async(
                queues=queues,
                concurrency=concurrency,
                name=name or "worker",
                wait=True,
                fetch_job_polling_interval=poll_s,
                abort_job_polling_interval=poll_s,
                update_heartbeat_interval=heartbeat_s,
                stalled_worker_timeout=stalled_after_s,
                shutdown_graceful_timeout=settings.shutdown_grace_s,
                install_signal_handlers=install_signal_handlers,
            )
        )
        sweeper = asyncio.create_task(
            _maintenance(app, engine, stalled_after_s, settings.maintenance_interval_s, queues)
        )
        try:
            if until is None:
                await worker
            else:
                while not worker.done():
                    if await asyncio.to_thread(until):
                        worker.cancel()
                        break
                    if wake is None:
                        await asyncio.sleep(poll_s)
                    else:
                        await asyncio.to_thread(wake, poll_s)
                try:
                    await worker
                except asyncio.CancelledError:
                    pass
        finally:
            sweeper.cancel()
            try:
                await sweeper
            except asyncio.CancelledError:
                pass


def run_worker(engine: Engine, **kwargs: Any) -> None:
    """Blocking `run_worker_async` (its own event loop)."""
    asyncio.run(run_worker_async(engine, **kwargs))
