"""`threadline status`: what is stored and what ran."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from threadline.db.models import Conversation, Message, Run, Source
from threadline.engine.scopes import scope_names

RECENT_RUNS = 10  # runs listed by status: the recent history, not an audit log


def status_summary(session: Session) -> dict[str, Any]:
    conversations = dict(
        session.execute(
            select(Conversation.source_id, func.count())
            .where(Conversation.deleted_at.is_(None))
            .group_by(Conversation.source_id)
        ).all()
    )
    messages = dict(
        session.execute(
            select(Conversation.source_id, func.count(Message.id))
            .join(Message, Message.conversation_id == Conversation.id)
            .group_by(Conversation.source_id)
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
        for s in session.execute(select(Source).order_by(Source.id)).scalars()
    ]
    recent = list(session.execute(select(Run).order_by(Run.id.desc()).limit(RECENT_RUNS)).scalars())
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
