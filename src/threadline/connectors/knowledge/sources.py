"""Knowledge sources: adding one of a registered knowledge kind, listing them, and syncing one.

The one code path of `threadline knowledge add|list|sync`: the connector is found by its kind
in the registry (its record type must be `ArticleRecord`), its stored options are validated by
its configuration model, and each sync is a `knowledge_syncs` row that every article and
passage it writes points back to. After a sync that wrote passages, the passages' vector
index is built concurrently if it does not exist yet.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Boolean, Engine, func, literal_column, select, update
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.orm import Session

from threadline.ai.embeddings import Embedder, process_embedder
from threadline.config import get_settings
from threadline.connectors.base import CONNECTORS, Connector, ConnectorError, get_connector
from threadline.connectors.knowledge.sink import KnowledgeSink, ensure_passage_index
from threadline.connectors.knowledge.syncs import INTERRUPTED, LIVE_SQL, knowledge_sync_lock
from threadline.connectors.records import ArticleRecord
from threadline.connectors.sources import SourceError, validated_config
from threadline.db.models import Article, KnowledgeSource, KnowledgeSync, Passage
from threadline.registry import UnknownPlugin


def is_knowledge(connector: Connector[Any]) -> bool:
    """Whether `connector` produces knowledge articles (else conversations)."""
    return connector.record_type is ArticleRecord


def knowledge_kinds() -> list[str]:
    """Registered knowledge connector kinds, sorted."""
    return sorted(connector.kind for connector in CONNECTORS if is_knowledge(connector))


def knowledge_connector(kind: str) -> Connector[Any]:
    """The registered knowledge connector of `kind` (`SourceError` when there is none)."""
    try:
        connector = get_connector(kind)
    except UnknownPlugin as exc:
        raise SourceError(str(exc)) from None
    if not is_knowledge(connector) or connector.sync is None:
        raise SourceError(f"{kind!r} is not a knowledge connector; knowledge kinds: {', '.join(knowledge_kinds())}")
    return connector


def add_knowledge_source(session: Session, kind: str, name: str, values: dict[str, Any]) -> KnowledgeSource:
    """Create the knowledge source `name` of `kind` (or reconfigure it when it exists with that kind)."""
    connector = knowledge_connector(kind)
    options = validated_config(connector, values).model_dump(mode="json", exclude_none=True)
    source = session.execute(select(KnowledgeSource).where(KnowledgeSource.name == name)).scalar_one_or_none()
    if source is None:
        source = KnowledgeSource(name=name, kind=kind, options=options, sync_state={})
        session.add(source)
    elif source.kind != kind:
        raise SourceError(f"knowledge source {name!r} already exists with kind {source.kind!r}")
    source.options = options
    session.flush()
    return source


def knowledge_source_id(session: Session, name: str) -> int:
    source_id = session.execute(select(KnowledgeSource.id).where(KnowledgeSource.name == name)).scalar_one_or_none()
    if source_id is None:
        raise SourceError(f"no knowledge source named {name!r}; see `threadline knowledge list`")
    return int(source_id)


@dataclass(frozen=True)
class KnowledgeSyncResult:
    """One finished sync: its id (what articles and passages point to) and its counters."""

    sync_id: int
    source: str
    counters: dict[str, int]
    index_built: bool


def sync_knowledge(
    engine: Engine, name: str, *, embedder: Embedder | None = None, job_id: int | None = None
) -> KnowledgeSyncResult:
    """Sync the knowledge source `name` through its connector and record the sync.

    Raises `SourceError` for an unknown source or kind and the connector's `ConnectorError`
    when the sync as a whole fails (the sync row is then `failed` with the error; articles of
    batches already committed stay). Raises `KnowledgeSyncBusy` (a `SourceError`), writing
    nothing, while another sync of the source runs (`threadline.connectors.knowledge.syncs`).
    `job_id` is the worker job running the sync, recorded on its row (None in the foreground).
    """
    with Session(engine) as session:
        source_id = knowledge_source_id(session, name)
    with knowledge_sync_lock(engine, source_id, name):
        return _sync_locked(engine, name, source_id, embedder, job_id)


def _sync_locked(
    engine: Engine, name: str, source_id: int, embedder: Embedder | None, job_id: int | None
) -> KnowledgeSyncResult:
    """The sync itself, under the source's sync lock."""
    with Session(engine) as session, session.begin():
        source = session.get(KnowledgeSource, source_id)
        assert source is not None
        kind, options = source.kind, dict(source.options or {})
        connector = knowledge_connector(kind)
        config = validated_config(connector, options)
        sync_row = KnowledgeSync(knowledge_source_id=source_id, status="running", job_id=job_id)
        session.add(sync_row)
        session.flush()
        sync_id = sync_row.id
    sink = KnowledgeSink(engine, source_id, sync_id, embedder or process_embedder())
    sync = connector.sync
    assert sync is not None

    async def run() -> Any:
        return await sync(config, sink, None)

    try:
        report = asyncio.run(run())
    except Exception as exc:
        message = str(exc) if isinstance(exc, ConnectorError | SourceError) else f"unexpected {type(exc).__name__}"
        _finish(engine, sync_id, "failed", sink.stats.counters(), message)
        raise
    counters = {**report.counters(), **sink.stats.counters()}
    built = ensure_passage_index(engine) if sink.stats.passages else False
    _finish(engine, sync_id, "succeeded", counters, None)
    return KnowledgeSyncResult(sync_id, name, counters, built)


def _finish(engine: Engine, sync_id: int, status: str, counters: dict[str, int], error: str | None) -> None:
    limit = get_settings().engine.max_sync_error_chars
    with Session(engine) as session, session.begin():
        session.execute(
            update(KnowledgeSync)
            .where(KnowledgeSync.id == sync_id)
            .values(
                status=status,
                counters=counters,
                error=error[:limit] if error else None,
                finished_at=datetime.now(UTC),
            )
        )


def list_knowledge(session: Session) -> list[dict[str, Any]]:
    """Knowledge sources with their kind, options, article and passage counts and last sync."""
    articles = (
        select(Article.knowledge_source_id, Article.status, func.count())
        .group_by(Article.knowledge_source_id, Article.status)
        .subquery()
    )
    counts: dict[int, dict[str, int]] = {}
    for source_id, status, count in session.execute(select(articles)):
        counts.setdefault(int(source_id), {})[str(status)] = int(count)
    passages = dict(
        session.execute(
            select(Article.knowledge_source_id, func.count(Passage.id))
            .join(Passage, (Passage.article_id == Article.id) & (Passage.content_hash == Article.content_hash))
            .where(Article.status == "active")
            .group_by(Article.knowledge_source_id)
        ).all()
    )
    last = {
        int(row.knowledge_source_id): row
        for row in session.execute(
            select(KnowledgeSync)
            .ext(distinct_on(KnowledgeSync.knowledge_source_id))
            .order_by(KnowledgeSync.knowledge_source_id, KnowledgeSync.id.desc())
        ).scalars()
    }
    running = [sync.id for sync in last.values() if sync.status == "running"]
    dead = (
        set(
            session.execute(
                select(KnowledgeSync.id).where(KnowledgeSync.id.in_(running), ~literal_column(LIVE_SQL, Boolean))
            ).scalars()
        )
        if running
        else set()
    )  # `running` rows whose process is gone read as interrupted, as in the API
    out: list[dict[str, Any]] = []
    for source in session.execute(select(KnowledgeSource).order_by(KnowledgeSource.id)).scalars():
        sync = last.get(source.id)
        out.append(
            {
                "id": source.id,
                "name": source.name,
                "kind": source.kind,
                "options": dict(source.options or {}),
                "articles": counts.get(source.id, {}).get("active", 0),
                "removed_articles": counts.get(source.id, {}).get("removed", 0),
                "passages": int(passages.get(source.id, 0)),
                "last_sync": None
                if sync is None
                else {
                    "id": sync.id,
                    "status": INTERRUPTED if sync.id in dead else sync.status,
                    "started_at": sync.started_at.isoformat(),
                    "finished_at": sync.finished_at.isoformat() if sync.finished_at else None,
                    "counters": dict(sync.counters or {}),
                    "error": sync.error,
                },
            }
        )
    return out
