"""Sources with their conversation counts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, Select, bindparam, func, select
from sqlalchemy.orm import Session

from threadline.db.models import Conversation, Source

SOURCES, CONVERSATIONS = Source.__table__, Conversation.__table__


def _sources_page() -> Select:
    """Sources by id with their live conversation counts, :limit and :offset (one grouped count, columns only)."""
    counts = (
        select(CONVERSATIONS.c.source_id, func.count().label("n"))
        .where(CONVERSATIONS.c.deleted_at.is_(None))
        .group_by(CONVERSATIONS.c.source_id)
        .subquery()
    )
    return (
        select(
            SOURCES.c.id,
            SOURCES.c.name,
            SOURCES.c.kind,
            func.coalesce(counts.c.n, 0).label("conversations"),
            SOURCES.c.created_at,
        )
        .select_from(SOURCES.outerjoin(counts, counts.c.source_id == SOURCES.c.id))
        .order_by(SOURCES.c.id)
        .limit(bindparam("limit", type_=Integer))
        .offset(bindparam("offset", type_=Integer))
    )


SOURCES_PAGE = _sources_page()  # built once at import: SQLAlchemy reuses its compiled form and memoized cache key


def list_sources(session: Session, *, limit: int, offset: int) -> list[dict[str, Any]]:
    """Sources by id with their live conversation counts."""
    return [dict(row) for row in session.execute(SOURCES_PAGE, {"limit": limit, "offset": offset}).mappings()]
