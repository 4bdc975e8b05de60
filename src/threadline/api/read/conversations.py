"""Conversations: filtered lists, PostgreSQL full-text search, one conversation with its messages."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, exists, func, or_, select
from sqlalchemy.orm import Session, load_only

from threadline.db.models import Conversation, Message, Source, Theme, ThemeMember

SEARCH_CONFIG = "english"  # text search configuration; must match the index in migration 0003_api
MAX_QUERY_CHARS = 200  # characters of a search query: a few words, not a document
MAX_CONVERSATION_THEMES = 50  # theme memberships shown per conversation: the recent runs


SUMMARY_COLUMNS = (
    Conversation.id, Conversation.external_id, Conversation.subject, Conversation.state,
    Conversation.created_at, Conversation.url,
)  # fmt: skip


def message_tsvector():
    """The indexed expression (migration 0003_api builds a GIN index on exactly this)."""
    return func.to_tsvector(SEARCH_CONFIG, Message.text)


def _filtered(
    *,
    source: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    q: str | None = None,
    theme_id: int | None = None,
    run_id: int | None = None,
) -> Select:
    statement = (
        select(Conversation, Source.name)
        .options(load_only(*SUMMARY_COLUMNS))  # not `raw`: the whole source payload, per row
        .join(Source, Source.id == Conversation.source_id)
        .where(Conversation.deleted_at.is_(None))
    )
    if source is not None:
        statement = statement.where(Source.name == source)
    if since is not None:
        statement = statement.where(Conversation.created_at >= since)
    if until is not None:
        statement = statement.where(Conversation.created_at < until)
    if q:
        query = func.websearch_to_tsquery(SEARCH_CONFIG, q[:MAX_QUERY_CHARS])
        statement = statement.where(
            exists().where(Message.conversation_id == Conversation.id, message_tsvector().op("@@")(query))
        )
    if theme_id is not None:
        family = select(Theme.id).where(or_(Theme.id == theme_id, Theme.parent_id == theme_id))
        member = select(ThemeMember.conversation_id).where(ThemeMember.theme_id.in_(family))
        if run_id is not None:
            member = member.where(ThemeMember.run_id == run_id)
        statement = statement.where(Conversation.id.in_(member))
    return statement


def list_conversations(session: Session, *, limit: int, offset: int, **filters: Any) -> list[dict[str, Any]]:
    """Newest first; fetches `limit` rows (callers pass limit + 1 to learn whether more exist)."""
    messages = select(func.count()).where(Message.conversation_id == Conversation.id).scalar_subquery()
    rows = session.execute(
        _filtered(**filters).add_columns(messages)
        .order_by(Conversation.created_at.desc().nulls_last(), Conversation.id.desc())
        .limit(limit).offset(offset)
    ).all()  # fmt: skip
    return [_summary(c, source, count) for c, source, count in rows]


def _summary(conversation: Conversation, source: str, messages: int) -> dict[str, Any]:
    return {
        "id": conversation.id,
        "external_id": conversation.external_id,
        "source": source,
        "subject": conversation.subject,
        "state": conversation.state,
        "created_at": conversation.created_at,
        "messages": messages,
        "url": conversation.url,
    }


def get_conversation(session: Session, conversation_id: int) -> dict[str, Any] | None:
    """One conversation with its ordered messages and the themes runs put it in."""
    row = session.execute(
        select(Conversation, Source.name).join(Source, Source.id == Conversation.source_id)
        .where(Conversation.id == conversation_id, Conversation.deleted_at.is_(None))
    ).first()  # fmt: skip
    if row is None:
        return None
    conversation, source = row
    messages = list(
        session.execute(select(Message).where(Message.conversation_id == conversation_id).order_by(Message.position)).scalars()
    )
    themes = session.execute(
        select(ThemeMember.run_id, Theme.id, Theme.name).join(Theme, Theme.id == ThemeMember.theme_id)
        .where(ThemeMember.conversation_id == conversation_id).order_by(ThemeMember.run_id.desc())
        .limit(MAX_CONVERSATION_THEMES)
    ).all()  # fmt: skip
    return {
        **_summary(conversation, source, len(messages)),
        "tags": list(conversation.tags or []),
        "message_list": [
            {"id": m.id, "position": m.position, "author_role": m.author_role, "text": m.text,
             "created_at": m.created_at, "truncated": bool(m.truncated)}
            for m in messages
        ],  # fmt: skip
        "themes": [{"run_id": r, "theme_id": t, "theme": n} for r, t, n in themes],
    }
