"""Conversations: filtered lists, PostgreSQL full-text search, one conversation with its messages."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    DateTime,
    Integer,
    Select,
    Text,
    any_,
    bindparam,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.orm import Session

from threadline.analysis.theme_entities import ENTITIES_ANALYSIS
from threadline.config import get_settings
from threadline.db.models import Analysis, Conversation, Message, RunTheme, Source, Theme, ThemeMember
from threadline.read.display import shown
from threadline.read.sources import syncs_by_id
from threadline.read.themes import theme_name, unassigned_ids

SEARCH_CONFIG = "english"  # text search configuration; must match the index in migration 0003_api


CONVERSATIONS = Conversation.__table__  # Core tables: list reads build rows, not ORM objects (cheaper per row)
MESSAGES = Message.__table__
SOURCES = Source.__table__
# Not `raw` (the whole source payload, per row).
SUMMARY_COLUMNS = (
    CONVERSATIONS.c.id,
    CONVERSATIONS.c.external_id,
    SOURCES.c.name.label("source"),
    CONVERSATIONS.c.subject,
    CONVERSATIONS.c.state,
    CONVERSATIONS.c.created_at,
    CONVERSATIONS.c.url,
)
# The search configuration as SQL text, not a bind parameter, so that a prepared statement's generic plan
# still matches the GIN index expression.
SEARCH_REGCONFIG: ColumnElement[Any] = literal_column(f"'{SEARCH_CONFIG}'::regconfig")
FILTERS = ("source", "since", "until", "q", "theme_id", "run_id", "unassigned", "entity")  # list_conversations' filters


def message_tsvector():
    """The indexed expression (migration 0003_api builds a GIN index on exactly this)."""
    return func.to_tsvector(SEARCH_REGCONFIG, Message.text)


@functools.lru_cache(maxsize=2 ** len(FILTERS))
def _list_statement(present: frozenset[str]) -> Select:
    """Newest live conversations with the filters in `present` as bind parameters, plus :limit and :offset.

    Built once per combination of filters: SQLAlchemy then reuses its compiled form and
    memoized cache key, and psycopg can prepare it, instead of rebuilding all three per request.
    """
    messages = (
        select(func.count())
        .select_from(MESSAGES)
        .where(MESSAGES.c.conversation_id == CONVERSATIONS.c.id)
        .scalar_subquery()
        .label("messages")
    )
    statement = (
        select(*SUMMARY_COLUMNS, messages)
        .select_from(CONVERSATIONS.join(SOURCES, SOURCES.c.id == CONVERSATIONS.c.source_id))
        .where(CONVERSATIONS.c.deleted_at.is_(None))
    )
    if "source" in present:
        statement = statement.where(SOURCES.c.name == bindparam("source"))
    if "since" in present:
        statement = statement.where(CONVERSATIONS.c.created_at >= bindparam("since", type_=DateTime(timezone=True)))
    if "until" in present:
        statement = statement.where(CONVERSATIONS.c.created_at < bindparam("until", type_=DateTime(timezone=True)))
    if "q" in present:
        # `id = ANY(ARRAY(matching ids))`: the GIN index finds the matching messages once, then a
        # primary-key lookup per match; EXISTS/IN plans scan every conversation (3-5x slower at 10k).
        query = func.websearch_to_tsquery(SEARCH_REGCONFIG, bindparam("q", type_=Text))
        matching = select(MESSAGES.c.conversation_id).where(message_tsvector().op("@@")(query))
        statement = statement.where(CONVERSATIONS.c.id == any_(func.array(matching.scalar_subquery())))
    if "theme_id" in present:
        # A lineage, or a group and its themes (as the run's snapshot grouped them).
        snapshots, members = RunTheme.__table__, ThemeMember.__table__
        theme_id = bindparam("theme_id", type_=BigInteger)
        family = select(snapshots.c.theme_id).where(
            or_(snapshots.c.theme_id == theme_id, snapshots.c.parent_id == theme_id)
        )
        member = select(members.c.conversation_id).where(members.c.theme_id.in_(family))
        if "run_id" in present:
            run_id = bindparam("run_id", type_=BigInteger)
            family = family.where(snapshots.c.run_id == run_id)
            member = select(members.c.conversation_id).where(members.c.theme_id.in_(family), members.c.run_id == run_id)
        statement = statement.where(CONVERSATIONS.c.id.in_(member))
    if "entity" in present:
        # The conversation's newest entities analysis holds ":entity" in its keys (a bare value or
        # type:value); older analyses (before a knowledge base or facet changed) no longer count.
        analyses = Analysis.__table__
        newer = Analysis.__table__.alias("newer")
        superseded = (
            select(newer.c.id)
            .where(
                newer.c.conversation_id == analyses.c.conversation_id,
                newer.c.stage == ENTITIES_ANALYSIS,
                newer.c.id > analyses.c.id,
            )
            .exists()
        )
        mentioning = select(analyses.c.conversation_id).where(
            analyses.c.stage == ENTITIES_ANALYSIS,
            analyses.c.output["keys"].has_key(bindparam("entity", type_=Text)),
            ~superseded,
        )
        statement = statement.where(CONVERSATIONS.c.id.in_(mentioning))
    if "unassigned" in present:
        # Conversations the run read but put in no theme (outliers): visible, never silently absent.
        statement = statement.where(CONVERSATIONS.c.id.in_(unassigned_ids()))
    return (
        statement.order_by(CONVERSATIONS.c.created_at.desc().nulls_last(), CONVERSATIONS.c.id.desc())
        .limit(bindparam("limit", type_=Integer))
        .offset(bindparam("offset", type_=Integer))
    )


def list_conversations(
    session: Session,
    *,
    limit: int,
    offset: int,
    source: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    q: str | None = None,
    theme_id: int | None = None,
    run_id: int | None = None,
    unassigned: bool = False,
    entity: str | None = None,
) -> list[dict[str, Any]]:
    """Newest first; fetches `limit` rows (callers pass limit + 1 to learn whether more exist).

    `entity` keeps conversations that mention it: a value ("ios", any case) or "type:value"
    ("platform:ios"), as stored by the coverage stage's entities step.

    `run_id` narrows `theme_id` to one run's membership; with `unassigned`, the list is the
    run's conversations that no theme holds (`unassigned` needs a `run_id`); alone it filters
    nothing.
    """
    if unassigned and run_id is None:
        raise ValueError("unassigned conversations are those of one run: give its run_id")
    params: dict[str, Any] = {
        "source": source,
        "since": since,
        "until": until,
        "q": q[: get_settings().read.max_query_chars] if q else None,
        "theme_id": theme_id,
        "run_id": run_id if theme_id is not None or unassigned else None,
        "unassigned": True if unassigned else None,
        "entity": entity.strip().lower() if entity and entity.strip() else None,
    }
    params = {name: value for name, value in params.items() if value is not None}
    statement = _list_statement(frozenset(params))
    bound = {name: value for name, value in params.items() if name != "unassigned"}
    rows = session.execute(statement, {**bound, "limit": limit, "offset": offset}).mappings()
    return [{**row, "subject": shown(row["subject"])} for row in rows]


def _summary(conversation: Conversation, source: str, messages: int) -> dict[str, Any]:
    return {
        "id": conversation.id,
        "external_id": conversation.external_id,
        "source": source,
        "subject": shown(conversation.subject),
        "state": conversation.state,
        "created_at": conversation.created_at,
        "messages": messages,
        "url": conversation.url,
    }


SYNC_REF_FIELDS = ("id", "kind", "status", "started_at", "finished_at")  # what a conversation says of a sync


def _sync_ref(sync: dict[str, Any] | None) -> dict[str, Any] | None:
    return {name: sync[name] for name in SYNC_REF_FIELDS} if sync else None


def get_conversation(session: Session, conversation_id: int) -> dict[str, Any] | None:
    """One conversation with its ordered messages, the themes runs put it in, and the syncs that brought and changed it.

    `created_by_sync` / `changed_by_sync` are None when not recorded (written before sync
    records existed, or the record was deleted).
    """
    row = session.execute(
        select(Conversation, Source.name)
        .join(Source, Source.id == Conversation.source_id)
        .where(Conversation.id == conversation_id, Conversation.deleted_at.is_(None))
    ).first()
    if row is None:
        return None
    conversation, source = row
    messages = list(
        session.execute(
            select(Message).where(Message.conversation_id == conversation_id).order_by(Message.position)
        ).scalars()
    )
    themes = session.execute(
        select(ThemeMember.run_id, Theme.id, RunTheme.name, Theme.human_name)
        .join(Theme, Theme.id == ThemeMember.theme_id)
        .outerjoin(RunTheme, (RunTheme.run_id == ThemeMember.run_id) & (RunTheme.theme_id == ThemeMember.theme_id))
        .where(ThemeMember.conversation_id == conversation_id)
        .order_by(ThemeMember.run_id.desc())
        .limit(get_settings().read.max_conversation_themes)
    ).all()
    syncs = syncs_by_id(
        session, [i for i in (conversation.created_by_sync_id, conversation.changed_by_sync_id) if i is not None]
    )
    return {
        **_summary(conversation, source, len(messages)),
        "created_by_sync": _sync_ref(syncs.get(conversation.created_by_sync_id or 0)),
        "changed_by_sync": _sync_ref(syncs.get(conversation.changed_by_sync_id or 0)),
        "tags": list(conversation.tags or []),
        "message_list": [
            {
                "id": m.id,
                "position": m.position,
                "author_role": m.author_role,
                "text": shown(m.text) or "",
                "created_at": m.created_at,
                "truncated": bool(m.truncated),
            }
            for m in messages
        ],
        "themes": [{"run_id": r, "theme_id": t, "theme": theme_name(h, n)} for r, t, n, h in themes],
    }
