"""Writing conversations: the one place connectors' records become rows.

Upsert semantics (by (source_id, external_id)):
- a new conversation is inserted with its messages;
- a known conversation whose content hash is unchanged is left untouched (no write at all);
- a changed conversation has its fields, content hash and `changed_at` updated, and its
  messages upserted by position (message ids stay stable, so evidence links survive an
  edit of another message); positions beyond the new message count are deleted.
A batch is deduplicated by external id before writing (the last occurrence wins), and
contacts are upserted first so conversations only reference rows that exist. Each
statement is an `INSERT ... ON CONFLICT`, so concurrent imports of one source cannot
create duplicates. Rows are written in one stable order (contacts and conversations by
external id, messages by conversation and position), so concurrent writers of overlapping
batches lock rows in the same order and cannot deadlock each other. Committing (and
retrying a batch on a serialization failure) is the caller's job.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, func, literal_column, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from threadline.connectors.records import ContactRecord, ConversationRecord
from threadline.db.models import Contact, Conversation, Message, Source
from threadline.text.normalize import normalize_message


@dataclass
class UpsertStats:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates_in_batch: int = 0

    def add(self, other: UpsertStats) -> None:
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.duplicates_in_batch += other.duplicates_in_batch


def get_or_create_source(
    session: Session, name: str, kind: str = "file", config: dict[str, Any] | None = None
) -> Source:
    """The source called `name`, created (race-free) when missing."""
    session.execute(
        insert(Source)
        .values(name=name, kind=kind, config=config or {}, sync_state={})
        .on_conflict_do_nothing(index_elements=["name"])
    )
    return session.execute(select(Source).where(Source.name == name)).scalar_one()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def content_hash(record: ConversationRecord) -> str:
    """SHA-256 over everything the source told us about the conversation, canonically encoded."""
    payload = {
        "messages": [
            [m.author_role, m.text, _iso(m.created_at), m.external_id, m.author_id, m.truncated]
            for m in record.messages
        ],
        "fields": [
            _iso(record.created_at),
            _iso(record.updated_at),
            record.state,
            record.url,
            record.subject,
            sorted(record.tags),
            record.assignee,
            record.notes,
        ],
        "contact": record.contact.__dict__ if record.contact else None,
        "raw": record.raw,
    }
    encoded = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def _upsert_contacts(session: Session, source_id: int, contacts: Sequence[ContactRecord]) -> dict[str, int]:
    unique = {c.external_id: c for c in contacts}
    unique = {key: unique[key] for key in sorted(unique)}  # stable lock order across concurrent imports
    if not unique:
        return {}
    statement = insert(Contact).values(
        [
            dict(
                source_id=source_id,
                external_id=c.external_id,
                email=c.email,
                name=c.name,
                company=c.company,
                plan=c.plan,
                attributes=c.attributes,
            )
            for c in unique.values()
        ]
    )
    upsert = statement.on_conflict_do_update(
        index_elements=["source_id", "external_id"],
        set_={
            # A sparse record (e.g. a CSV row with only an id) never erases known details.
            "email": func.coalesce(statement.excluded.email, Contact.email),
            "name": func.coalesce(statement.excluded.name, Contact.name),
            "company": func.coalesce(statement.excluded.company, Contact.company),
            "plan": func.coalesce(statement.excluded.plan, Contact.plan),
            "attributes": Contact.attributes.op("||")(statement.excluded.attributes),
            "updated_at": func.now(),
        },
    ).returning(Contact.external_id, Contact.id)
    return {external_id: contact_id for external_id, contact_id in session.execute(upsert)}


def upsert_conversations(
    session: Session, source_id: int, records: Sequence[ConversationRecord], *, sync_id: int | None = None
) -> UpsertStats:
    """Insert new, update changed and skip unchanged conversations of one source (see module doc).

    `sync_id` (a `source_syncs` row) is recorded as the creator of inserted conversations and
    as the last changer of inserted and changed ones; unchanged ones keep theirs.
    """
    stats = UpsertStats()
    unique: dict[str, ConversationRecord] = {}
    for record in records:
        if record.external_id in unique:
            stats.duplicates_in_batch += 1
        unique[record.external_id] = record
    if not unique:
        return stats
    unique = {key: unique[key] for key in sorted(unique)}  # stable lock order across concurrent imports
    contact_ids = _upsert_contacts(session, source_id, [r.contact for r in unique.values() if r.contact])
    hashes = {key: content_hash(record) for key, record in unique.items()}
    rows = [
        dict(
            source_id=source_id,
            external_id=key,
            created_at=r.created_at,
            updated_at=r.updated_at,
            state=r.state,
            url=r.url,
            subject=r.subject,
            tags=list(r.tags),
            assignee=r.assignee,
            contact_id=contact_ids.get(r.contact.external_id) if r.contact else None,
            content_hash=hashes[key],
            raw=r.raw,
            notes=list(r.notes),
            deleted_at=None,
            created_by_sync_id=sync_id,
            changed_by_sync_id=sync_id,
        )
        for key, r in unique.items()
    ]
    statement = insert(Conversation).values(rows)
    changed_columns = (
        "created_at",
        "updated_at",
        "state",
        "url",
        "subject",
        "tags",
        "assignee",
        "contact_id",
        "content_hash",
        "raw",
        "notes",
        "deleted_at",
    )
    upsert = statement.on_conflict_do_update(
        index_elements=["source_id", "external_id"],
        set_={
            **{c: statement.excluded[c] for c in changed_columns},
            "changed_at": func.now(),
            "changed_by_sync_id": func.coalesce(statement.excluded.changed_by_sync_id, Conversation.changed_by_sync_id),
        },
        where=Conversation.content_hash.is_distinct_from(statement.excluded.content_hash)
        | Conversation.deleted_at.is_not(None),
    ).returning(
        Conversation.external_id, Conversation.id, literal_column("xmax = 0", Boolean)
    )  # xmax = 0: row was inserted, not updated
    written = session.execute(upsert).all()
    for _, _, is_new in written:
        if is_new:
            stats.inserted += 1
        else:
            stats.updated += 1
    stats.unchanged = len(unique) - len(written)
    _replace_messages(session, [(conversation_id, unique[key]) for key, conversation_id, _ in written])
    return stats


def _replace_messages(session: Session, written: list[tuple[int, ConversationRecord]]) -> None:
    """Upsert messages by (conversation, position) and delete positions past the new end."""
    if not written:
        return
    rows = [
        dict(
            conversation_id=conversation_id,
            position=position,
            external_id=m.external_id,
            author_role=m.author_role,
            author_id=m.author_id,
            raw_text=m.text,
            text=normalize_message(m.text),
            created_at=m.created_at,
            truncated=m.truncated,
        )
        for conversation_id, record in sorted(written, key=lambda item: item[0])  # stable lock order
        for position, m in enumerate(record.messages)
    ]
    for start in range(0, len(rows), 1000):  # 1000 rows x 9 columns stays under 65,535 bind parameters
        statement = insert(Message).values(rows[start : start + 1000])
        statement = statement.on_conflict_do_update(
            index_elements=["conversation_id", "position"],
            set_={
                c: statement.excluded[c]
                for c in ("external_id", "author_role", "author_id", "raw_text", "text", "created_at", "truncated")
            },
        )
        session.execute(statement)
    conversation_ids = [conversation_id for conversation_id, _ in written]
    counts = [len(record.messages) for _, record in written]
    session.execute(
        text(
            "DELETE FROM messages m USING unnest(CAST(:ids AS bigint[]), CAST(:counts AS int[])) AS v(cid, n) "
            "WHERE m.conversation_id = v.cid AND m.position >= v.n "
            "AND m.conversation_id = ANY(CAST(:ids AS bigint[]))"  # probes the index instead of scanning every message
        ),
        {"ids": conversation_ids, "counts": counts},
    )
