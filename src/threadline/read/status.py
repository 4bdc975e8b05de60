"""`threadline status`: what is stored and what ran."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from threadline.db.tables import CONVERSATIONS, MESSAGES, RUNS, SOURCES
from threadline.engine.scopes import scope_names

if TYPE_CHECKING:  # for annotations only: `threadline status` runs these Core queries without loading the ORM
    from sqlalchemy import Connection
    from sqlalchemy.orm import Session

RECENT_RUNS = 10  # runs listed by status: the recent history, not an audit log


def status_summary(session: Session | Connection) -> dict[str, Any]:
    conversations: dict[int, int] = dict(
        session.execute(
            select(CONVERSATIONS.c.source_id, func.count())
            .where(CONVERSATIONS.c.deleted_at.is_(None))
            .group_by(CONVERSATIONS.c.source_id)
        ).all()
    )
    messages: dict[int, int] = dict(
        session.execute(
            select(CONVERSATIONS.c.source_id, func.count(MESSAGES.c.id))
            .join(MESSAGES, MESSAGES.c.conversation_id == CONVERSATIONS.c.id)
            .group_by(CONVERSATIONS.c.source_id)
        ).all()
    )
    sources = [
        {
            "id": s.id,
            "name": s.name,
            "kind": s.kind,
            "conversations": conversations.get(s.id, 0),
            "messages": messages.get(s.id, 0),
        }
        for s in session.execute(select(SOURCES.c.id, SOURCES.c.name, SOURCES.c.kind).order_by(SOURCES.c.id))
    ]
    recent = session.execute(select(RUNS).order_by(RUNS.c.id.desc()).limit(RECENT_RUNS)).all()
    names = scope_names(session, {r.scope_id for r in recent})
    runs = [
        {
            "id": r.id,
            "status": r.status,
            "phase": r.phase,
            "conversations": (r.counters or {}).get("conversations", 0),
            "sources": names.get(r.scope_id, []),
            "created_at": r.created_at.isoformat() if r.created_at else None,
            "finished_at": r.finished_at.isoformat() if r.finished_at else None,
        }
        for r in recent
    ]
    return {"sources": sources, "runs": runs}
