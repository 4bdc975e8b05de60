"""Conversations: list with filters and full-text search, one with its messages."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from threadline.api.schemas import ConversationDetail, ConversationSummary, Problem
from threadline.read.conversations import get_conversation, list_conversations
from threadline.server.deps import ApiAuth, DbSession, ReadDb
from threadline.server.params import (
    MAX_ID,
    WITHIN_QUERY_CHARS,
    EntityQuery,
    IdPath,
    LimitQuery,
    OffsetQuery,
    Page,
    page_of,
    pick_or_error,
)

router = APIRouter(tags=["conversations"], responses={401: {"model": Problem}})


@router.get("/conversations", response_model=Page[ConversationSummary])
async def conversations(
    read: ReadDb,
    _: ApiAuth,
    limit: LimitQuery = 50,
    offset: OffsetQuery = 0,
    source: Annotated[str | None, Query(max_length=200, description="Source name.")] = None,
    since: Annotated[datetime | None, Query(description="Created at or after.")] = None,
    until: Annotated[datetime | None, Query(description="Created before.")] = None,
    q: Annotated[
        Annotated[str, WITHIN_QUERY_CHARS] | None,
        Query(description="Full-text search (web search syntax)."),
    ] = None,
    theme_id: Annotated[int | None, Query(ge=1, le=MAX_ID, description="Members of this theme.")] = None,
    run_id: Annotated[
        int | None,
        Query(
            ge=1,
            le=MAX_ID,
            description="With theme_id: membership in this run. With unassigned: this run "
            "(default: the latest succeeded run).",
        ),
    ] = None,
    unassigned: Annotated[
        bool, Query(description="Only the conversations the run read but placed in no theme (its outliers).")
    ] = False,
    entity: EntityQuery = None,
) -> dict:
    """Newest first. `q` searches message text with PostgreSQL full-text search (English stemming)."""
    if unassigned and run_id is None:
        picked = await read(pick_or_error, None, None)
        if picked is None:
            return page_of([], limit, offset)
        run_id = picked.id
    rows = await read(
        list_conversations,
        limit=limit + 1,
        offset=offset,
        source=source,
        since=since,
        until=until,
        q=q,
        theme_id=theme_id,
        run_id=run_id,
        unassigned=unassigned,
        entity=entity,
    )
    return page_of(rows, limit, offset)


@router.get("/conversations/{conversation_id}", response_model=ConversationDetail, responses={404: {"model": Problem}})
def conversation(conversation_id: IdPath, db: DbSession, _: ApiAuth) -> dict:
    found = get_conversation(db, conversation_id)
    if found is None:
        raise HTTPException(404, detail="no such conversation")
    return found
