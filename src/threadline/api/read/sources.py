"""Sources with their conversation counts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from threadline.db.models import Conversation, Source


def list_sources(session: Session, *, limit: int, offset: int) -> list[dict[str, Any]]:
    counts = (
        select(Conversation.source_id, func.count().label("n")).where(Conversation.deleted_at.is_(None))
        .group_by(Conversation.source_id).subquery()
    )  # fmt: skip
    rows = session.execute(
        select(Source, func.coalesce(counts.c.n, 0)).outerjoin(counts, counts.c.source_id == Source.id)
        .order_by(Source.id).limit(limit).offset(offset)
    ).all()  # fmt: skip
    return [
        {"id": s.id, "name": s.name, "kind": s.kind, "conversations": n, "created_at": s.created_at} for s, n in rows
    ]
