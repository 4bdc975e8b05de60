"""Knowledge sources as the API shows them: article counts, their syncs, and the active sync job.

A `knowledge_syncs` row still `running` whose source lock nobody holds reads as `interrupted`
(`threadline.connectors.knowledge.syncs.LIVE_SQL`). Text that may carry personal data (a
sync's error quotes a page's URL or path; options name paths and URLs) passes `shown`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Boolean, and_, case, func, literal_column, select
from sqlalchemy.orm import Session

from threadline.connectors.knowledge.syncs import INTERRUPTED, LIVE_SQL
from threadline.db.models import Article, KnowledgeSource, KnowledgeSync
from threadline.engine.knowledge_sync import active_knowledge_jobs
from threadline.read.display import shown

RECENT_KNOWLEDGE_SYNCS = 20  # syncs shown in a knowledge source's detail, newest first: a few weeks of daily syncs

SOURCES, SYNCS, ARTICLES = KnowledgeSource.__table__, KnowledgeSync.__table__, Article.__table__


def _sync_columns() -> tuple[Any, ...]:
    status = case(
        (and_(SYNCS.c.status == "running", ~literal_column(LIVE_SQL, Boolean)), INTERRUPTED), else_=SYNCS.c.status
    )
    return (
        SYNCS.c.id,
        SYNCS.c.knowledge_source_id,
        SYNCS.c.job_id,
        status.label("status"),
        SYNCS.c.started_at,
        SYNCS.c.finished_at,
        SYNCS.c.counters,
        SYNCS.c.error,
    )


def _sync_view(row: Any) -> dict[str, Any]:
    view = dict(row)
    view.pop("knowledge_source_id", None)
    view["counters"] = {k: int(v) for k, v in (view["counters"] or {}).items() if isinstance(v, int)}
    view["error"] = shown(view["error"])
    return view


def _last_syncs(session: Session, source_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The newest sync of each given knowledge source (one query)."""
    if not source_ids:
        return {}
    newest = (
        select(func.max(SYNCS.c.id))
        .where(SYNCS.c.knowledge_source_id.in_(list(source_ids)))
        .group_by(SYNCS.c.knowledge_source_id)
    )
    statement = select(*_sync_columns()).where(SYNCS.c.id.in_(newest))
    return {int(row["knowledge_source_id"]): _sync_view(row) for row in session.execute(statement).mappings()}


def _article_counts(session: Session, source_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """Articles per knowledge source and status (one grouped count)."""
    if not source_ids:
        return {}
    statement = (
        select(ARTICLES.c.knowledge_source_id, ARTICLES.c.status, func.count())
        .where(ARTICLES.c.knowledge_source_id.in_(list(source_ids)))
        .group_by(ARTICLES.c.knowledge_source_id, ARTICLES.c.status)
    )
    counts: dict[int, dict[str, int]] = {}
    for source_id, status, count in session.execute(statement):
        counts.setdefault(int(source_id), {})[str(status)] = int(count)
    return counts


def _with_state(session: Session, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ids = [int(row["id"]) for row in rows]
    counts, last, jobs = _article_counts(session, ids), _last_syncs(session, ids), active_knowledge_jobs(session, ids)
    out = []
    for row in rows:
        source_id = int(row["id"])
        job = jobs.get(source_id)
        out.append(
            {
                **row,
                "articles": counts.get(source_id, {}).get("active", 0),
                "removed_articles": counts.get(source_id, {}).get("removed", 0),
                "last_sync": last.get(source_id),
                "job": None if job is None else {"job_id": job.job_id, "status": job.status},
            }
        )
    return out


def list_knowledge_sources(session: Session, *, limit: int, offset: int) -> list[dict[str, Any]]:
    """A page of knowledge sources by id, with article counts, last sync and active job."""
    statement = (
        select(SOURCES.c.id, SOURCES.c.name, SOURCES.c.kind, SOURCES.c.created_at)
        .order_by(SOURCES.c.id)
        .limit(limit)
        .offset(offset)
    )
    return _with_state(session, [dict(row) for row in session.execute(statement).mappings()])


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return shown(value)
    if isinstance(value, list):
        return [_masked(v) for v in value]
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    return value


def knowledge_source_detail(
    session: Session, name: str, *, syncs: int = RECENT_KNOWLEDGE_SYNCS
) -> dict[str, Any] | None:
    """One knowledge source (options name variables, never secrets) with its newest `syncs` syncs; None if unknown."""
    row = (
        session.execute(
            select(SOURCES.c.id, SOURCES.c.name, SOURCES.c.kind, SOURCES.c.created_at, SOURCES.c.options).where(
                SOURCES.c.name == name
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    view = _with_state(session, [dict(row)])[0]
    view["options"] = _masked(dict(view["options"] or {}))
    recent = (
        select(*_sync_columns())
        .where(SYNCS.c.knowledge_source_id == view["id"])
        .order_by(SYNCS.c.id.desc())
        .limit(syncs)
    )
    view["syncs"] = [_sync_view(r) for r in session.execute(recent).mappings()]
    return view
