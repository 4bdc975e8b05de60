"""PostgreSQL sink of a knowledge sync: articles by content hash, passages with vectors, removals, dead letters.

Per batch: the stored hashes are read in a short session, new and changed articles are split
at headings and their passages embedded (outside any transaction: the model takes seconds),
then one transaction writes articles, passages, removals, dead letters and the sync state.
An article whose hash is unchanged costs one indexed lookup: nothing is split, embedded or
written. A version's passages are written once (UNIQUE article, hash, position), so an
article that returns to an earlier text reuses that version's passages.

After a sync wrote passages, `ensure_passage_index` builds the HNSW cosine index with
`CREATE INDEX CONCURRENTLY` (a bulk build that blocks no reader or writer) when it is missing
or invalid (an interrupted concurrent build leaves an invalid index behind).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select, text, update
from sqlalchemy.orm import Session

from threadline.ai.embeddings import Embedder
from threadline.config import get_settings
from threadline.connectors.base import SyncBatch
from threadline.connectors.knowledge.common import KNOWLEDGE_STAGE
from threadline.connectors.records import ArticleRecord
from threadline.db.models import Article, KnowledgeSource
from threadline.db.models import DeadLetter as DeadLetterRow
from threadline.db.vectors import PassageRow, insert_passages
from threadline.text.passages import TextPassage, split_passages

logger = logging.getLogger(__name__)

PASSAGE_INDEX = "ix_passages_embedding_hnsw"
# pgvector's HNSW defaults (m=16, ef_construction=64): recall ~0.99 on sentence embeddings at this scale.
CREATE_PASSAGE_INDEX_SQL = (
    f"CREATE INDEX CONCURRENTLY {PASSAGE_INDEX} ON passages USING hnsw (embedding vector_cosine_ops)"
)
_INDEX_STATE_SQL = text(
    """
    SELECT i.indisvalid FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid
     WHERE c.relname = :name AND c.relkind = 'i'
    """
)


def content_hash(record: ArticleRecord) -> str:
    """SHA-256 of what the passages are made of: the title and the text (not the URL or dates)."""
    digest = hashlib.sha256(record.title.encode("utf-8"))
    digest.update(b"\x00")
    digest.update(record.text.encode("utf-8"))
    return digest.hexdigest()


def dead_letter_item(source_id: int, external_id: str) -> str:
    """`dead_letters.item` of one article of one knowledge source."""
    return f"knowledge-source {source_id}: {external_id}"


def passage_input(title: str, passage: TextPassage) -> str:
    """What is embedded for a passage: the article title and heading path give a short section its topic."""
    return "\n".join([" > ".join((title, *passage.heading_path)), passage.text.strip()])


@dataclass
class SinkStats:
    """What the sink wrote: articles created, changed, unchanged (no work), restored, removed; passages embedded."""

    created: int = 0
    changed: int = 0
    unchanged: int = 0
    restored: int = 0
    removed: int = 0
    passages: int = 0

    def counters(self) -> dict[str, int]:
        return {
            "created": self.created,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "restored": self.restored,
            "removed_articles": self.removed,
            "passages_embedded": self.passages,
        }


class KnowledgeSink:
    """Writes one knowledge source's sync (sync id `sync_id`) into the database, one short session per call."""

    def __init__(self, engine: Engine, source_id: int, sync_id: int | None, embedder: Embedder) -> None:
        self.engine = engine
        self.source_id = source_id
        self.sync_id = sync_id
        self.embedder = embedder
        self.stats = SinkStats()

    def load_state(self) -> dict[str, Any]:
        with Session(self.engine) as session:
            query = select(KnowledgeSource.sync_state).where(KnowledgeSource.id == self.source_id)
            return dict(session.execute(query).scalar_one() or {})

    def stored_versions(self, external_ids: Sequence[str]) -> Mapping[str, datetime | None]:
        out: dict[str, datetime | None] = {}
        step = get_settings().input.max_ids_per_query
        with Session(self.engine) as session:
            for start in range(0, len(external_ids), step):
                rows = session.execute(
                    select(Article.external_id, Article.source_updated_at).where(
                        Article.knowledge_source_id == self.source_id,
                        Article.external_id.in_(list(external_ids[start : start + step])),
                        Article.status == "active",
                    )
                )
                out.update({external_id: updated for external_id, updated in rows})
        return out

    def active_ids(self) -> set[str]:
        with Session(self.engine) as session:
            rows = session.execute(
                select(Article.external_id).where(
                    Article.knowledge_source_id == self.source_id, Article.status == "active"
                )
            )
            return {external_id for (external_id,) in rows}

    def _stored(self, external_ids: list[str]) -> dict[str, tuple[int, str, str, datetime | None]]:
        """{external id: (article id, content hash, status, the source's date)} of the given ids."""
        with Session(self.engine) as session:
            rows = session.execute(
                select(
                    Article.external_id, Article.id, Article.content_hash, Article.status, Article.source_updated_at
                ).where(Article.knowledge_source_id == self.source_id, Article.external_id.in_(external_ids))
            )
            return {eid: (article_id, digest, status, updated) for eid, article_id, digest, status, updated in rows}

    def _versions_with_passages(self, pairs: list[tuple[int, str]]) -> set[tuple[int, str]]:
        """Which (article id, content hash) versions already have their passages stored."""
        if not pairs:
            return set()
        with Session(self.engine) as session:
            rows = session.execute(
                text(
                    "SELECT DISTINCT p.article_id, p.content_hash FROM passages p"
                    " JOIN unnest(CAST(:ids AS bigint[]), CAST(:hashes AS text[])) AS k(article_id, content_hash)"
                    " ON p.article_id = k.article_id AND p.content_hash = k.content_hash"
                ),
                {"ids": [a for a, _ in pairs], "hashes": [h for _, h in pairs]},
            )
            return {(int(article_id), str(digest)) for article_id, digest in rows}

    def commit(self, batch: SyncBatch[ArticleRecord]) -> None:
        records = {record.external_id: record for record in batch.records}  # the last of duplicates wins
        hashes = {external_id: content_hash(record) for external_id, record in records.items()}
        stored = self._stored(list(records)) if records else {}
        to_write = [eid for eid in records if eid not in stored or stored[eid][1] != hashes[eid]]
        restored = [
            eid for eid in records if eid in stored and stored[eid][1] == hashes[eid] and stored[eid][2] != "active"
        ]
        # Same text, new date (a front-matter date bumped, a page re-published): only the date is written.
        redated = [
            eid
            for eid in records
            if eid in stored and stored[eid][1] == hashes[eid] and stored[eid][3] != records[eid].updated_at
        ]
        reusable = self._versions_with_passages([(stored[eid][0], hashes[eid]) for eid in to_write if eid in stored])
        needs_passages = [eid for eid in to_write if eid not in stored or (stored[eid][0], hashes[eid]) not in reusable]
        split = {
            eid: split_passages(records[eid].text, get_settings().knowledge.max_passage_chars) for eid in needs_passages
        }
        inputs = [passage_input(records[eid].title, p) for eid in needs_passages for p in split[eid]]
        vectors = self.embedder.embed(inputs) if inputs else None
        now = datetime.now(UTC)
        with Session(self.engine) as session, session.begin():
            article_ids: dict[str, int] = {}
            for eid in to_write:
                record = records[eid]
                values = {
                    "url": record.url,
                    "title": record.title,
                    "body": record.text,
                    "content_hash": hashes[eid],
                    "status": "active",
                    "source_updated_at": record.updated_at,
                    "changed_by_sync_id": self.sync_id,
                    "changed_at": now,
                    "removed_at": None,
                }
                if eid in stored:
                    article_ids[eid] = stored[eid][0]
                    session.execute(update(Article).where(Article.id == stored[eid][0]).values(**values))
                    self.stats.changed += 1
                else:
                    article = Article(
                        knowledge_source_id=self.source_id, external_id=eid, created_by_sync_id=self.sync_id, **values
                    )
                    session.add(article)
                    session.flush()
                    article_ids[eid] = article.id
                    self.stats.created += 1
            for eid in restored:
                session.execute(
                    update(Article)
                    .where(Article.id == stored[eid][0])
                    .values(status="active", removed_at=None, changed_by_sync_id=self.sync_id, changed_at=now)
                )
                self.stats.restored += 1
            for eid in redated:
                session.execute(
                    update(Article)
                    .where(Article.id == stored[eid][0])
                    .values(source_updated_at=records[eid].updated_at)
                )
            self.stats.unchanged += len(records) - len(to_write) - len(restored)
            rows: list[PassageRow] = []
            position_in_batch = 0
            for eid in needs_passages:
                for position, passage in enumerate(split[eid]):
                    assert vectors is not None
                    rows.append(
                        (
                            article_ids[eid],
                            hashes[eid],
                            position,
                            list(passage.heading_path),
                            passage.text,
                            passage.start,
                            passage.end,
                            self.embedder.model_name,
                            vectors[position_in_batch],
                            self.sync_id,
                        )
                    )
                    position_in_batch += 1
            insert_passages(session, rows)
            self.stats.passages += len(rows)
            for eid in batch.deleted:
                removed = session.execute(
                    update(Article)
                    .where(
                        Article.knowledge_source_id == self.source_id,
                        Article.external_id == eid,
                        Article.status == "active",
                    )
                    .values(status="removed", removed_at=now, changed_by_sync_id=self.sync_id, changed_at=now)
                )
                self.stats.removed += removed.rowcount  # type: ignore[attr-defined]
            self._dead_letters(session, batch, list(records), now)
            session.execute(
                update(KnowledgeSource).where(KnowledgeSource.id == self.source_id).values(sync_state=batch.state)
            )

    def _dead_letters(self, session: Session, batch: SyncBatch[ArticleRecord], ok: list[str], now: datetime) -> None:
        """Close the open dead letters of items that succeeded or failed again; record the new failures."""
        failed = [dead_letter_item(self.source_id, letter.item) for letter in batch.dead_letters]
        items = [dead_letter_item(self.source_id, eid) for eid in ok] + failed
        if items:
            session.execute(
                update(DeadLetterRow)
                .where(
                    DeadLetterRow.run_id.is_(None),
                    DeadLetterRow.stage == KNOWLEDGE_STAGE,
                    DeadLetterRow.item.in_(items),
                    DeadLetterRow.retried_at.is_(None),
                )
                .values(retried_at=now)
            )
        for letter, item in zip(batch.dead_letters, failed, strict=True):
            session.add(
                DeadLetterRow(
                    run_id=None,
                    stage=KNOWLEDGE_STAGE,
                    item=item,
                    error_class=letter.error_class,
                    error_message=letter.error_message,
                    attempts=letter.attempts,
                    failed_at=letter.failed_at,
                )
            )


def ensure_passage_index(engine: Engine) -> bool:
    """Build the passages' HNSW cosine index concurrently when it is missing or invalid; True when built now."""
    with engine.connect() as connection:
        valid = connection.execute(_INDEX_STATE_SQL, {"name": PASSAGE_INDEX}).scalar_one_or_none()
    if valid:
        return False
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        if valid is False:  # an interrupted concurrent build left an invalid index: drop it, then build again
            connection.execute(text(f"DROP INDEX CONCURRENTLY IF EXISTS {PASSAGE_INDEX}"))
        connection.execute(text(CREATE_PASSAGE_INDEX_SQL))
    logger.info("built the passage vector index %s", PASSAGE_INDEX)
    return True
