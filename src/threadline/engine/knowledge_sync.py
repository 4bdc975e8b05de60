"""Knowledge sync as a durable job: `threadline.knowledge_sync {knowledge_source_id}`, run by `threadline worker`.

The job runs the same code path as `threadline knowledge sync NAME`
(`threadline.connectors.knowledge.sources.sync_knowledge`, in the worker's process, with the
worker's embedder); the `knowledge_syncs` row it opens carries the job's id. The API server
never syncs.

At most one job per knowledge source is active: `enqueue_knowledge_sync` locks the knowledge
source row, answers with the queued or running job if there is one, and only otherwise defers
a new job in the caller's transaction. The job carries a procrastinate `queueing_lock` (at most
one queued) and `lock` (never two running). A sync started by other means (the CLI, another
machine) holds the source's advisory lock (`threadline.connectors.knowledge.syncs`); a job that
finds it taken does not write beside it: it raises `KnowledgeSyncWaiting` and procrastinate runs
it again `BUSY_RETRY_DELAY_S` later (at most `MAX_BUSY_ATTEMPTS` times), so the sync asked for
still happens, after the one running.

State: procrastinate's `procrastinate_jobs` row says queued/running/ended; the `knowledge_syncs`
rows say what each sync did (counters, error). Failures are not retried (the connectors retry
each request; a missing folder or a refused token stays so): the job ends `failed`, its row too.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, bindparam, select, text
from sqlalchemy.orm import Session

from threadline.connectors.base import ConnectorError
from threadline.connectors.knowledge.sources import knowledge_connector, sync_knowledge
from threadline.connectors.knowledge.syncs import KnowledgeSyncBusy
from threadline.connectors.sources import SourceError
from threadline.db.models import KnowledgeSource
from threadline.engine.defer import TASK_PREFIX, JobSpec, defer_once
from threadline.engine.errors import RetryLater
from threadline.engine.status import SyncStatus
from threadline.engine.sync import JOB_STATUS_TO_SYNC, safe_error

logger = logging.getLogger(__name__)

KNOWLEDGE_SYNC_TASK = TASK_PREFIX + "knowledge_sync"
BUSY_RETRY_DELAY_S = 30.0  # seconds before a job that found another sync running tries again: a sync takes minutes
MAX_BUSY_ATTEMPTS = 120  # runs of one job while other syncs hold the source: an hour at BUSY_RETRY_DELAY_S


class UnknownKnowledgeSource(LookupError):
    """No knowledge source has this name."""


class KnowledgeSyncFailed(Exception):
    """The knowledge sync job failed; the message is the token-free reason (also on its `knowledge_syncs` row)."""


class KnowledgeSyncWaiting(RetryLater):
    """Another sync of the knowledge source is running: run this job again later, after it."""

    def __init__(self, source_id: int) -> None:
        super().__init__(BUSY_RETRY_DELAY_S, 1)
        self.args = (f"knowledge source {source_id} is being synced elsewhere; trying again in {BUSY_RETRY_DELAY_S}s",)


@dataclass(frozen=True)
class KnowledgeJob:
    """The active (queued or running) sync job of a knowledge source."""

    job_id: int
    status: SyncStatus


@dataclass(frozen=True)
class KnowledgeSyncEnqueued:
    """Answer of `enqueue_knowledge_sync`: the source's active job, and whether this call queued it."""

    knowledge_source_id: int
    job_id: int
    created: bool
    status: SyncStatus


def knowledge_sync_lock(source_id: int) -> str:
    """procrastinate lock and queueing lock shared by every sync job of one knowledge source."""
    return f"{KNOWLEDGE_SYNC_TASK}-knowledge-{source_id}"


def knowledge_sync_job_spec(source_id: int) -> JobSpec:
    """The job that syncs knowledge source `source_id`: one queued at most, never two running."""
    key = knowledge_sync_lock(source_id)
    return JobSpec(KNOWLEDGE_SYNC_TASK, {"knowledge_source_id": source_id}, lock=key, queueing_lock=key)


_ACTIVE_JOBS_SQL = text(
    """
    SELECT id, status::text AS status, CASE WHEN status = 'todo' THEN queueing_lock ELSE lock END AS key
      FROM procrastinate_jobs
     WHERE task_name = :task
       AND ((queueing_lock IN :keys AND status = 'todo') OR (lock IN :keys AND status = 'doing'))
     ORDER BY id
    """
).bindparams(bindparam("keys", expanding=True))  # served by procrastinate's partial unique indexes on both locks


def active_knowledge_jobs(session: Session, source_ids: Sequence[int]) -> dict[int, KnowledgeJob]:
    """The queued or running sync job of each given knowledge source that has one (one query for a page)."""
    if not source_ids:
        return {}
    by_key = {knowledge_sync_lock(source_id): source_id for source_id in source_ids}
    rows = session.execute(_ACTIVE_JOBS_SQL, {"task": KNOWLEDGE_SYNC_TASK, "keys": list(by_key)}).all()
    jobs: dict[int, KnowledgeJob] = {}
    for row in rows:  # oldest first: a running job wins over one queued behind it
        jobs.setdefault(by_key[row.key], KnowledgeJob(int(row.id), JOB_STATUS_TO_SYNC[row.status]))
    return jobs


def enqueue_knowledge_sync(session: Session, name: str) -> KnowledgeSyncEnqueued:
    """Queue a sync of knowledge source `name` in the caller's transaction, or return the one queued/running.

    The knowledge source row is locked first (FOR NO KEY UPDATE), so concurrent callers are
    serialized: the second sees the first one's job (after its commit) and gets `created=False`.
    Raises `UnknownKnowledgeSource`, or `SourceError` when its kind is no longer a registered
    knowledge connector. The caller commits.
    """
    locked = (
        select(KnowledgeSource.id, KnowledgeSource.kind)
        .where(KnowledgeSource.name == name)
        .with_for_update(key_share=True)
    )
    row = session.execute(locked).first()
    if row is None:
        raise UnknownKnowledgeSource(f"no knowledge source named {name!r}")
    source_id = int(row.id)
    knowledge_connector(row.kind)
    active = active_knowledge_jobs(session, [source_id]).get(source_id)
    if active is not None:
        return KnowledgeSyncEnqueued(source_id, active.job_id, False, active.status)
    job_id = defer_once(session, knowledge_sync_job_spec(source_id))
    if job_id is None:  # queued outside this function between our check and insert: answer with that one
        active = active_knowledge_jobs(session, [source_id]).get(source_id)
        assert active is not None, "queueing lock taken but no active knowledge sync job found"
        return KnowledgeSyncEnqueued(source_id, active.job_id, False, active.status)
    return KnowledgeSyncEnqueued(source_id, job_id, True, SyncStatus.QUEUED)


def run_knowledge_sync_job(engine: Engine, source_id: int, *, job_id: int) -> dict[str, int]:
    """Body of the `threadline.knowledge_sync` task: sync the knowledge source, return its counters.

    Raises `KnowledgeSyncWaiting` while another sync holds the source, `KnowledgeSyncFailed`
    (token-free) when the sync fails.
    """
    with Session(engine) as session:
        source = session.execute(
            select(KnowledgeSource.name, KnowledgeSource.kind, KnowledgeSource.options).where(
                KnowledgeSource.id == source_id
            )
        ).first()
    if source is None:
        raise KnowledgeSyncFailed(f"knowledge source {source_id} no longer exists")
    try:
        result = sync_knowledge(engine, source.name, job_id=job_id)
    except KnowledgeSyncBusy:
        raise KnowledgeSyncWaiting(source_id) from None
    except (ConnectorError, SourceError) as exc:
        token_env = (source.options or {}).get("token_env")
        raise KnowledgeSyncFailed(safe_error(exc, token_env, f"{source.kind} knowledge")) from None
    logger.info("knowledge sync job %s of knowledge source %s done: %s", job_id, source_id, result.counters)
    return result.counters
