"""Sync records: which sync (or file import) of a source brought each conversation, and what each one did.

Every sync and every import opens a `source_syncs` row (`SyncRecord.open`) before it writes,
passes the row's id to `upsert_conversations` (which stamps `created_by_sync_id` on inserted
conversations and `changed_by_sync_id` on inserted and changed ones) and adds its counters
in the same transaction as the data (`add_counts`), so the counters never disagree with what
was committed, even when the sync is stopped half-way. `finish` records the outcome.

Liveness: while it runs, the sync holds a session-level advisory lock keyed by its id on a
connection of its own. A process that dies (SIGKILL, power loss) loses its connection and the
lock with it, so a row still `running` whose lock nobody holds reads as `interrupted`
(`LIVE_SQL`), on any machine sharing the database, without timeouts or heartbeats.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, text, update
from sqlalchemy.orm import Session

from threadline.db.models import SourceSync

logger = logging.getLogger(__name__)

LOCK_NAMESPACE = 7_406_118  # first key of the two-key advisory lock a running sync holds (second: its id)
INTERRUPTED = "interrupted"  # shown for a `running` row whose process is gone

# True while the sync's process holds its lock (pg_locks shows a two-int4 advisory lock as objsubid 2).
LIVE_SQL = f"""
    EXISTS (SELECT 1 FROM pg_locks AS l
             WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
               AND l.classid = {LOCK_NAMESPACE} AND l.objid = CAST(source_syncs.id AS oid)
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()))
"""


def add_counts(
    session: Session,
    sync_id: int | None,
    *,
    created: int = 0,
    changed: int = 0,
    unchanged: int = 0,
    deleted: int = 0,
    dead_letters: int = 0,
) -> None:
    """Add to the counters of sync `sync_id` in the caller's transaction (the one that commits the data)."""
    if sync_id is None or not any((created, changed, unchanged, deleted, dead_letters)):
        return
    session.execute(
        update(SourceSync)
        .where(SourceSync.id == sync_id)
        .values(
            created=SourceSync.created + created,
            changed=SourceSync.changed + changed,
            unchanged=SourceSync.unchanged + unchanged,
            deleted=SourceSync.deleted + deleted,
            dead_letters=SourceSync.dead_letters + dead_letters,
        )
    )


class SyncRecord:
    """The `source_syncs` row of one running sync or import, and the lock that says it is alive.

    Use as a context manager: the row is committed and the lock taken on entry; on exit the
    outcome is recorded (`failed` with the exception's class when the block raised, unless
    `finish` was called) and the lock released.
    """

    def __init__(self, engine: Engine, source_id: int, *, kind: str, job_id: int | None = None) -> None:
        self.engine = engine
        self.source_id = source_id
        self.kind = kind
        self.job_id = job_id
        self.id: int | None = None
        self._lock: Connection | None = None
        self._finished = False

    def __enter__(self) -> SyncRecord:
        with Session(self.engine) as session, session.begin():
            self.id = int(
                session.execute(
                    insert(SourceSync)
                    .values(source_id=self.source_id, kind=self.kind, job_id=self.job_id, status="running")
                    .returning(SourceSync.id)
                ).scalar_one()
            )
        self._lock = self.engine.connect()
        self._lock.execute(text("SELECT pg_advisory_lock(:ns, :id)"), {"ns": LOCK_NAMESPACE, "id": self.id})
        self._lock.commit()  # the lock is session-level: it outlives this transaction, not the connection
        return self

    def finish(self, status: str, *, error: str | None = None, unchanged: int = 0) -> None:
        """Record the outcome (`succeeded` or `failed`, a token-free error) and counts only the connector saw."""
        assert self.id is not None, "finish() of a sync record that was never opened"
        with Session(self.engine) as session, session.begin():
            session.execute(
                update(SourceSync)
                .where(SourceSync.id == self.id)
                .values(status=status, error=error, finished_at=func.now(), unchanged=SourceSync.unchanged + unchanged)
            )
        self._finished = True

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if not self._finished and self.id is not None:
                reason = "interrupted" if exc_type is None else f"stopped by {exc_type.__name__}"
                self.finish("failed", error=reason)
        finally:
            if self._lock is not None:
                try:
                    self._lock.execute(
                        text("SELECT pg_advisory_unlock(:ns, :id)"), {"ns": LOCK_NAMESPACE, "id": self.id}
                    )
                    self._lock.commit()
                finally:
                    self._lock.close()
