"""PostgreSQL `SyncSink`: conversations, deletions, dead letters and sync state in one transaction.

The watermark lives in `sources.sync_state` and is written in the same transaction as the
conversations it covers, so it can never run ahead of committed data. One key of that JSON,
`JOB_STATUS_KEY`, belongs to the sync job (`threadline.engine.sync`: the last queued
sync's status, for the API); the sink neither loads it nor overwrites it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select, text, update
from sqlalchemy.orm import Session

from threadline.config import get_settings
from threadline.connectors.base import SyncBatch
from threadline.connectors.records import ConversationRecord
from threadline.connectors.store import UpsertStats, upsert_conversations
from threadline.connectors.syncs import add_counts
from threadline.db.models import Conversation, Source
from threadline.db.models import DeadLetter as DeadLetterRow

JOB_STATUS_KEY = "last_sync"  # key of sources.sync_state owned by the sync job, not by the sync itself

# Replace the sync's state but keep the job's status key as it is *now* (the job may have
# updated it since this sync loaded the state), so neither writer loses the other's update.
_WRITE_STATE_SQL = text(
    """
    UPDATE sources
       SET sync_state = CASE WHEN sync_state -> CAST(:reserved AS text) IS NULL THEN CAST(:state AS jsonb)
                             ELSE CAST(:state AS jsonb)
                                  || jsonb_build_object(CAST(:reserved AS text), sync_state -> CAST(:reserved AS text))
                        END
     WHERE id = :id
    """
)


class PostgresSink:
    """Writes one source's conversation sync into the Threadline database (one short session per call)."""

    def __init__(
        self, engine: Engine, source_id: int, run_id: int | None = None, *, sync_id: int | None = None
    ) -> None:
        self.engine = engine
        self.source_id = source_id
        self.run_id = run_id
        self.sync_id = sync_id  # the `source_syncs` row stamped on what this sink writes, counters added to it
        self.upserts = UpsertStats()

    def load_state(self) -> dict[str, Any]:
        with Session(self.engine) as session:
            state = session.execute(select(Source.sync_state).where(Source.id == self.source_id)).scalar_one()
            return {key: value for key, value in (state or {}).items() if key != JOB_STATUS_KEY}

    def stored_versions(self, external_ids: Sequence[str]) -> Mapping[str, datetime | None]:
        out: dict[str, datetime | None] = {}
        step = get_settings().input.max_ids_per_query
        with Session(self.engine) as session:
            for start in range(0, len(external_ids), step):
                chunk = list(external_ids[start : start + step])
                rows = session.execute(
                    select(Conversation.external_id, Conversation.updated_at).where(
                        Conversation.source_id == self.source_id,
                        Conversation.external_id.in_(chunk),
                        Conversation.deleted_at.is_(None),
                    )
                )
                out.update({external_id: updated_at for external_id, updated_at in rows})
        return out

    def commit(self, batch: SyncBatch[ConversationRecord]) -> None:
        with Session(self.engine) as session, session.begin():
            stats = UpsertStats()
            if batch.records:
                stats = upsert_conversations(session, self.source_id, batch.records, sync_id=self.sync_id)
                self.upserts.add(stats)
            deleted = 0
            stamp = {} if self.sync_id is None else {"changed_by_sync_id": self.sync_id}  # a deletion is a change
            for external_id, deleted_at in batch.deleted.items():
                deleted += len(
                    session.execute(
                        update(Conversation)
                        .where(
                            Conversation.source_id == self.source_id,
                            Conversation.external_id == external_id,
                            Conversation.deleted_at.is_(None),
                        )
                        .values(deleted_at=deleted_at, **stamp)
                        .returning(Conversation.id)
                    ).all()
                )
            for letter in batch.dead_letters:
                session.add(
                    DeadLetterRow(
                        run_id=self.run_id,
                        stage=letter.stage,
                        item=letter.item,
                        error_class=letter.error_class,
                        error_message=letter.error_message,
                        attempts=letter.attempts,
                        failed_at=letter.failed_at,
                    )
                )
            add_counts(
                session,
                self.sync_id,
                created=stats.inserted,
                changed=stats.updated,
                unchanged=stats.unchanged,
                deleted=deleted,
                dead_letters=len(batch.dead_letters),
            )
            state = {key: value for key, value in batch.state.items() if key != JOB_STATUS_KEY}
            session.execute(
                _WRITE_STATE_SQL, {"reserved": JOB_STATUS_KEY, "state": json.dumps(state), "id": self.source_id}
            )
