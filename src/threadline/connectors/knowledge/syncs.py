"""One sync at a time per knowledge source, and what a `knowledge_syncs` row left `running` means.

Exclusion: a sync holds a session-level advisory lock keyed by its knowledge source's id, on a
connection of its own, from before it opens its `knowledge_syncs` row until it has recorded
the outcome. It is taken with `pg_try_advisory_lock`, one atomic step in the database (no
check-then-act): a second sync of the same source, from any process on any machine sharing
the database, is refused at once (`KnowledgeSyncBusy`) instead of writing the same articles
beside the first. Refused rather than queued behind it: the first sync is already reading the
source, so a second one started right after it would read every page again for nothing new;
the CLI says so in one line and the worker job tries again later (`engine.knowledge_sync`).

Liveness: a process that dies (SIGKILL, power loss) loses its connection and the lock with it.
A row still `running` whose source lock nobody holds reads as `interrupted` (`LIVE_SQL`,
like `source_syncs`), without timeouts or heartbeats; the next sync, once it holds the lock,
closes such rows as `failed` (`interrupted`), since no other sync of the source can be alive.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text, update
from sqlalchemy.orm import Session

from threadline.connectors.sources import SourceError
from threadline.db.models import KnowledgeSync

logger = logging.getLogger(__name__)

KNOWLEDGE_LOCK_NAMESPACE = 7_406_119  # first key of the two-key advisory lock of a knowledge sync (second: source id)
INTERRUPTED = "interrupted"  # shown for a `running` row whose process is gone
INTERRUPTED_ERROR = "interrupted: the process running this sync stopped before it ended"

# True while some process holds the sync lock of the row's knowledge source (a two-int4 advisory lock is objsubid 2).
LIVE_SQL = f"""
    EXISTS (SELECT 1 FROM pg_locks AS l
             WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
               AND l.classid = {KNOWLEDGE_LOCK_NAMESPACE}
               AND l.objid = CAST(knowledge_syncs.knowledge_source_id AS oid)
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()))
"""


class KnowledgeSyncBusy(SourceError):
    """Another sync of this knowledge source is running (in this or another process)."""


@contextmanager
def knowledge_sync_lock(engine: Engine, source_id: int, name: str) -> Iterator[None]:
    """Hold the sync lock of knowledge source `source_id` for the block, or raise `KnowledgeSyncBusy` at once.

    On entry, `running` rows of the source left by dead processes are closed as failed
    (`interrupted`): with the lock held, none of them can still be running.
    """
    lock = engine.connect()
    try:
        taken = lock.execute(
            text("SELECT pg_try_advisory_lock(:ns, :id)"), {"ns": KNOWLEDGE_LOCK_NAMESPACE, "id": source_id}
        ).scalar_one()
        lock.commit()  # the lock is session-level: it outlives this transaction, not the connection
        if not taken:
            raise KnowledgeSyncBusy(
                f"knowledge source {name!r} is being synced by another process; try again when that sync ends"
            )
        try:
            with Session(engine) as session, session.begin():
                closed = session.execute(
                    update(KnowledgeSync)
                    .where(KnowledgeSync.knowledge_source_id == source_id, KnowledgeSync.status == "running")
                    .values(status="failed", error=INTERRUPTED_ERROR)
                    .returning(KnowledgeSync.id)
                ).all()
            if closed:
                logger.info("closed %d interrupted sync(s) of knowledge source %s", len(closed), source_id)
            yield
        finally:
            try:
                lock.execute(
                    text("SELECT pg_advisory_unlock(:ns, :id)"), {"ns": KNOWLEDGE_LOCK_NAMESPACE, "id": source_id}
                )
                lock.commit()
            except Exception:
                lock.invalidate()  # never back to the pool while it may still hold the lock: closing it frees the lock
                raise
    finally:
        lock.close()
