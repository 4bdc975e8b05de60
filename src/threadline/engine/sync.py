"""Connector sync as a durable job: `threadline.sync {source_id}`, executed by `threadline worker`.

The job runs the same code path as `threadline sync SOURCE`
(`threadline.connectors.sources.sync_source`: the source's connector from the registry, one
HTTP client per sync, closed at the end, token read from the environment variable the
source's config names, in the worker's process). The API server never sees the token.

At most one sync per source is active: `enqueue_sync` locks the source row, answers with the
queued or running job if there is one, and only otherwise defers a new job in the caller's
transaction. The job carries a procrastinate `queueing_lock` (at most one queued) and `lock`
(never two running), a second line of defence for jobs deferred by other means.

Where the state lives: procrastinate's `procrastinate_jobs` row says queued/running/ended;
the job itself records what procrastinate cannot (start and end times, counters, a clear
error) under `sources.sync_state["last_sync"]` (`JOB_STATUS_KEY`; the sync's own state beside
it is never touched by these writes, and the sink never touches this key). `sync_statuses`
combines the two, one query for a page of sources.

Failures are not retried by procrastinate: the client already retries each request (429,
5xx, network) with backoff, and a refused token cannot succeed on retry. The job ends
`failed` with a token-free error; POST the sync again to retry.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, bindparam, select, text
from sqlalchemy.orm import Session

from threadline.config import get_settings
from threadline.connectors.base import ConnectorAuthError, ConnectorError, SyncReport, get_connector
from threadline.connectors.sink import JOB_STATUS_KEY
from threadline.connectors.sources import SourceError, sync_source
from threadline.db.engine import session_scope
from threadline.db.models import Source
from threadline.engine.defer import TASK_PREFIX, JobSpec, defer_once
from threadline.engine.status import SyncStatus
from threadline.registry import UnknownPlugin

logger = logging.getLogger(__name__)

SYNC_TASK = TASK_PREFIX + "sync"
REDACTED = "<redacted>"  # replaces a token value should one ever appear in an error message

# procrastinate job status -> sync status shown by the API
JOB_STATUS_TO_SYNC = {
    "todo": SyncStatus.QUEUED,
    "doing": SyncStatus.RUNNING,
    "succeeded": SyncStatus.SUCCEEDED,
    "failed": SyncStatus.FAILED,
    "cancelled": SyncStatus.CANCELLED,
    "aborting": SyncStatus.RUNNING,
    "aborted": SyncStatus.CANCELLED,
}
ENDED_SILENTLY = "the sync job ended without reporting a result (worker stopped or job aborted)"


class SyncError(Exception):
    """A sync cannot be queued for this source."""


class UnknownSource(SyncError, LookupError):
    """No source has this id."""


class NotSyncable(SyncError):
    """The source has no connector to pull from (a file source)."""


class SyncFailed(Exception):
    """The sync job failed; the message is the token-free reason also stored for the API."""


@dataclass(frozen=True)
class SyncEnqueued:
    """Answer of `enqueue_sync`: the active sync job of the source, and whether this call queued it."""

    job_id: int
    created: bool
    status: str


def _syncable(kind: str) -> bool:
    try:
        return get_connector(kind).syncable
    except UnknownPlugin:
        return False


def sync_lock(source_id: int) -> str:
    """procrastinate lock and queueing lock shared by every sync job of one source."""
    return f"{SYNC_TASK}-source-{source_id}"


def sync_job_spec(source_id: int) -> JobSpec:
    """The job that syncs `source_id`: one queued at most, never two running."""
    key = sync_lock(source_id)
    return JobSpec(SYNC_TASK, {"source_id": source_id}, lock=key, queueing_lock=key)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


_ACTIVE_JOB_SQL = text(
    """
    SELECT id, status::text FROM procrastinate_jobs
     WHERE task_name = :task
       AND ((queueing_lock = :key AND status = 'todo') OR (lock = :key AND status = 'doing'))
     ORDER BY id LIMIT 1
    """
)  # both branches are served by procrastinate's partial unique indexes on queueing_lock / lock


def _active_job(session: Session, source_id: int) -> SyncEnqueued | None:
    row = session.execute(_ACTIVE_JOB_SQL, {"task": SYNC_TASK, "key": sync_lock(source_id)}).first()
    return SyncEnqueued(int(row[0]), False, JOB_STATUS_TO_SYNC[row[1]]) if row else None


_WRITE_STATUS_SQL = text(
    """
    UPDATE sources
       SET sync_state = jsonb_set(sync_state, ARRAY[CAST(:key AS text)],
             CASE WHEN sync_state -> CAST(:key AS text) ->> 'job_id' = CAST(:job_id AS text)
                  THEN (sync_state -> CAST(:key AS text)) || CAST(:patch AS jsonb)
                  ELSE CAST(:patch AS jsonb) || jsonb_build_object('job_id', CAST(:job_id AS bigint))
             END)
     WHERE id = :source_id
    """
)


def record_status(session: Session, source_id: int, job_id: int, patch: dict[str, Any]) -> None:
    """Merge `patch` into the source's last-sync record of job `job_id` (a new job replaces the record)."""
    session.execute(
        _WRITE_STATUS_SQL,
        {"key": JOB_STATUS_KEY, "job_id": job_id, "patch": json.dumps(patch), "source_id": source_id},
    )


def enqueue_sync(session: Session, source_id: int) -> SyncEnqueued:
    """Queue a sync of `source_id` in the caller's transaction, or return the one already queued/running.

    The source row is locked first (FOR NO KEY UPDATE), so concurrent callers are serialized: the second one sees
    the first one's job (after its commit) and gets `created=False`. Raises `UnknownSource` or
    `NotSyncable`. The caller commits.
    """
    # key_share=True renders FOR NO KEY UPDATE: serializes enqueuers without waiting for a running
    # sync's conversation inserts (they only take KEY SHARE on the source row through their foreign key).
    locked = select(Source.kind).where(Source.id == source_id).with_for_update(key_share=True)
    kind = session.execute(locked).scalar_one_or_none()
    if kind is None:
        raise UnknownSource(f"no source with id {source_id}")
    if not _syncable(kind):
        raise NotSyncable(f"{kind} sources are imported with `threadline import`, not synced")
    active = _active_job(session, source_id)
    if active is not None:
        return active
    job_id = defer_once(session, sync_job_spec(source_id))
    if job_id is None:  # queued outside enqueue_sync between our check and insert: answer with that one
        active = _active_job(session, source_id)
        assert active is not None, "queueing lock taken but no active sync job found"
        return active
    record_status(session, source_id, job_id, {"status": "queued", "queued_at": _now_iso()})
    return SyncEnqueued(job_id, True, "queued")


# ---- the job ----------------------------------------------------------------------------------


def _token_env(engine: Engine, source_id: int) -> str | None:
    with Session(engine) as session:
        config = session.execute(select(Source.config).where(Source.id == source_id)).scalar_one_or_none()
    return (config or {}).get("token_env")


def _label(engine: Engine, source_id: int) -> str:
    with Session(engine) as session:
        kind = session.execute(select(Source.kind).where(Source.id == source_id)).scalar_one_or_none()
    try:
        return get_connector(kind).label if kind else "source"
    except UnknownPlugin:
        return str(kind)


def safe_error(exc: BaseException, token_env: str | None, label: str) -> str:
    """A clear, bounded, token-free reason for the API.

    Messages of `ConnectorError`/`SourceError` carry status, code, path or the variable's
    name, never the token; as a second guard, the token's value is replaced should it
    appear. Other exceptions may quote SQL parameters (customer text), so only their class
    is kept.
    """
    if isinstance(exc, ConnectorAuthError) and exc.status is None:  # the variable is unset where the job ran
        message = f"{exc} in the environment of `threadline worker`"
    elif isinstance(exc, ConnectorAuthError):
        message = f"{exc}; check the token in ${token_env} (read by `threadline worker`)"
    elif isinstance(exc, ConnectorError):
        message = f"{label} sync failed: {exc}"
    elif isinstance(exc, SourceError):
        message = str(exc)
    else:
        message = f"unexpected {type(exc).__name__} during the sync (details in the worker log)"
    token = os.environ.get(token_env) if token_env else None
    if token:
        message = message.replace(token, REDACTED)
    return message[: get_settings().engine.max_sync_error_chars]


def _report_fields(report: SyncReport) -> dict[str, Any]:
    """The sync report as stored: integer counters, and the watermark as an ISO time."""
    counters = report.counters()
    watermark = datetime.fromtimestamp(report.watermark, tz=UTC).isoformat() if report.watermark else None
    return {"counters": counters, "watermark": watermark}


def _record(engine: Engine, source_id: int, job_id: int, patch: dict[str, Any]) -> None:
    with session_scope(engine) as session:
        record_status(session, source_id, job_id, patch)


def run_sync_job(engine: Engine, source_id: int, *, job_id: int) -> dict[str, int]:
    """Body of the `threadline.sync` task: sync the source, record the outcome; raise `SyncFailed` on failure."""
    _record(
        engine,
        source_id,
        job_id,
        {"status": "running", "started_at": _now_iso(), "finished_at": None, "error": None, "counters": None},
    )
    try:
        report = sync_source(engine, source_id, job_id=job_id)
    except (ConnectorError, SourceError) as exc:
        message = safe_error(exc, _token_env(engine, source_id), _label(engine, source_id))
        _record(engine, source_id, job_id, {"status": "failed", "finished_at": _now_iso(), "error": message})
        raise SyncFailed(message) from None  # procrastinate logs it and marks the job failed
    except Exception as exc:
        message = safe_error(exc, _token_env(engine, source_id), _label(engine, source_id))
        _record(engine, source_id, job_id, {"status": "failed", "finished_at": _now_iso(), "error": message})
        raise
    fields = _report_fields(report)
    _record(engine, source_id, job_id, {"status": "succeeded", "finished_at": _now_iso(), "error": None, **fields})
    logger.info("sync job %s of source %s done: %s", job_id, source_id, fields["counters"])
    counters: dict[str, int] = fields["counters"]
    return counters


# ---- reading the state ------------------------------------------------------------------------

_STATUS_SQL = text(
    """
    SELECT s.id, s.sync_state -> CAST(:key AS text) AS last, j.status::text AS job_status
      FROM sources AS s
      LEFT JOIN procrastinate_jobs AS j ON j.id = CAST(s.sync_state -> CAST(:key AS text) ->> 'job_id' AS bigint)
     WHERE s.id IN :ids
    """
).bindparams(bindparam("ids", expanding=True))


def status_view(last: dict[str, Any], job_status: str | None) -> dict[str, Any]:
    """The API's view of a last-sync record, reconciled with procrastinate's status of the job.

    procrastinate is authoritative for queued/running/ended (it also sees jobs requeued after a
    worker died, or aborted); the record adds times, counters and the error. A job that already
    recorded its end but is still `doing` for procrastinate (the instant before it is marked)
    shows its recorded end.
    """
    recorded = last.get("status") or "queued"
    status = recorded
    if job_status is not None:
        mapped = JOB_STATUS_TO_SYNC.get(job_status, recorded)
        status = recorded if mapped == SyncStatus.RUNNING and SyncStatus(recorded).is_final else mapped
    error = last.get("error")
    if status in (SyncStatus.FAILED, SyncStatus.CANCELLED) and not error:
        error = ENDED_SILENTLY
    return {
        "job_id": int(last["job_id"]),
        "status": status,
        "queued_at": last.get("queued_at"),
        "started_at": last.get("started_at"),
        "finished_at": last.get("finished_at"),
        "error": error if SyncStatus(status).is_final else None,
        "counters": last.get("counters"),
        "watermark": last.get("watermark"),
    }


def sync_statuses(session: Session, source_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Last sync of each given source that has one (one query; callers pass a bounded page of ids)."""
    if not source_ids:
        return {}
    rows = session.execute(_STATUS_SQL, {"key": JOB_STATUS_KEY, "ids": list(source_ids)}).all()
    return {
        int(r.id): status_view(r.last, r.job_status) for r in rows if isinstance(r.last, dict) and "job_id" in r.last
    }


def sync_status(session: Session, source_id: int) -> dict[str, Any] | None:
    """Last sync of one source (None when it was never synced through a job)."""
    return sync_statuses(session, [source_id]).get(source_id)
