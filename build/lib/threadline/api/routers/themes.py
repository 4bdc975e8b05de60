"""Themes: the two-level tree with sizes, one theme, its trend series and member conversations."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from threadline.api.schemas import ConversationSummary, Problem, ThemeDetail, ThemeGroup, TrendSeries
from threadline.config import MAX_LIST_LIMIT
from threadline.read.conversations import list_conversations
from threadline.read.themes import Bucket, default_run_id, theme_detail, theme_tree, theme_trend
from threadline.server.deps import ApiAuth, DbSession, ReadDb
from threadline.server.params import MAX_ID, IdPath, LimitQuery, OffsetQuery, Page, page_of

router = APIRouter(tags=["themes"], responses={401: {"model": Problem}})
RunQuery = Annotated[int | None, Query(ge=1, le=MAX_ID, description="Run (default: the latest succeeded run).")]


@router.get("/themes", response_model=Page[ThemeGroup])
async def themes(
    read: ReadDb, _: ApiAuth, limit: LimitQuery = 50, offset: OffsetQuery = 0, run_id: RunQuery = None
) -> dict:
    """Top-level groups, largest first, each with its themes and their sizes in the run."""
    tree = await read(theme_tree, run_id=run_id, limit=MAX_LIST_LIMIT)
    return page_of(tree[offset : offset + limit + 1], limit, offset)


@router.get("/themes/{theme_id}", response_model=ThemeDetail, responses={404: {"model": Problem}})
def theme(theme_id: IdPath, db: DbSession, _: ApiAuth, run_id: RunQuery = None) -> dict:
    found = theme_detail(db, theme_id, run_id)
    if found is None:
        raise HTTPException(404, detail="no such theme")
    return found


@router.get("/themes/{theme_id}/trend", response_model=TrendSeries, responses={404: {"model": Problem}})
def trend(theme_id: IdPath, db: DbSession, _: ApiAuth, run_id: RunQuery = None, bucket: Bucket = "week") -> dict:
    """Member conversations per day/week/month of their creation time (a group includes its themes)."""
    if theme_detail(db, theme_id, run_id) is None:
        raise HTTPException(404, detail="no such theme")
    return theme_trend(db, theme_id, run_id=run_id, bucket=bucket)


@router.get(
    "/themes/{theme_id}/conversations", response_model=Page[ConversationSummary], responses={404: {"model": Problem}}
)
def members(
    theme_id: IdPath,
    db: DbSession,
    _: ApiAuth,
    limit: LimitQuery = 50,
    offset: OffsetQuery = 0,
    run_id: RunQuery = None,
) -> dict:
    """Conversations the run put in this theme, newest first."""
    if theme_detail(db, theme_id, run_id) is None:
        raise HTTPException(404, detail="no such theme")
    run = default_run_id(db, run_id)
    rows = [] if run is None else list_conversations(db, limit=limit + 1, offset=offset, theme_id=theme_id, run_id=run)
    return page_of(rows, limit, offset)
