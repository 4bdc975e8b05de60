"""Themes of a run's snapshot: the tree, one theme, its trend and members; curation (rename, merge, keep separate)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from threadline.api.schemas import (
    ConversationSummary,
    Problem,
    ThemeDetail,
    ThemeGroup,
    ThemeMerge,
    ThemePatch,
    TrendSeries,
)
from threadline.config import get_settings
from threadline.engine.curation import CurationError, actor_of_token, merge_theme, rename_theme, set_keep_separate
from threadline.read.conversations import list_conversations
from threadline.read.themes import Bucket, theme_detail, theme_tree, theme_trend
from threadline.server.deps import ApiAuth, DbSession, ReadDb
from threadline.server.params import (
    IdPath,
    LimitQuery,
    OffsetQuery,
    Page,
    RunQuery,
    SourcesQuery,
    page_of,
    pick_or_error,
)

router = APIRouter(tags=["themes"], responses={401: {"model": Problem}})


def _tree(db, run_id: int | None, source: list[str] | None) -> list[dict]:
    run = pick_or_error(db, run_id, source)
    return theme_tree(db, run_id=run.id if run else None, limit=get_settings().read.max_list_limit)


@router.get("/themes", response_model=Page[ThemeGroup], responses={404: {"model": Problem}, 422: {"model": Problem}})
async def themes(
    read: ReadDb,
    _: ApiAuth,
    limit: LimitQuery = 50,
    offset: OffsetQuery = 0,
    run_id: RunQuery = None,
    source: SourcesQuery = None,
) -> dict:
    """Top-level groups of one run's snapshot, largest first, each with its themes and their sizes."""
    tree = await read(_tree, run_id, source)
    return page_of(tree[offset : offset + limit + 1], limit, offset)


def _detail_or_404(db, theme_id: int, run_id: int | None) -> dict:
    found = theme_detail(db, theme_id, run_id)
    if found is None:
        raise HTTPException(404, detail="no such theme")
    return found


@router.get("/themes/{theme_id}", response_model=ThemeDetail, responses={404: {"model": Problem}})
def theme(theme_id: IdPath, db: DbSession, _: ApiAuth, run_id: RunQuery = None) -> dict:
    """A theme lineage as one run saw it (default: its scope's latest succeeded run), with its snapshots' history."""
    return _detail_or_404(db, theme_id, run_id)


@router.patch(
    "/themes/{theme_id}",
    response_model=ThemeDetail,
    responses={404: {"model": Problem}, 409: {"model": Problem}},
)
def curate(theme_id: IdPath, patch: ThemePatch, db: DbSession, token_id: ApiAuth) -> dict:
    """Rename (a person's name, shown with every snapshot and used by later runs) and/or mark keep-separate."""
    actor = actor_of_token(db, token_id)
    changes = patch.model_dump(exclude_unset=True)
    try:
        if "name" in changes:
            rename_theme(db, theme_id, changes["name"], actor)
        if changes.get("keep_separate") is not None:
            set_keep_separate(db, theme_id, changes["keep_separate"], actor)
    except CurationError as exc:
        db.rollback()
        raise HTTPException(exc.status, detail=str(exc)) from None
    db.commit()
    return _detail_or_404(db, theme_id, None)


@router.post(
    "/themes/{theme_id}/merge",
    response_model=ThemeDetail,
    responses={404: {"model": Problem}, 409: {"model": Problem}},
)
def merge(theme_id: IdPath, body: ThemeMerge, db: DbSession, token_id: ApiAuth) -> dict:
    """Merge this theme into another of the same scope: from the next run on, its conversations go there.

    Snapshots already written stay as they were. 409 when either is marked keep separate,
    already merged, of another scope, or a group.
    """
    try:
        merge_theme(db, theme_id, body.into, actor_of_token(db, token_id))
    except CurationError as exc:
        db.rollback()
        raise HTTPException(exc.status, detail=str(exc)) from None
    db.commit()
    return _detail_or_404(db, theme_id, None)


@router.get("/themes/{theme_id}/trend", response_model=TrendSeries, responses={404: {"model": Problem}})
def trend(theme_id: IdPath, db: DbSession, _: ApiAuth, run_id: RunQuery = None, bucket: Bucket = "week") -> dict:
    """Member conversations in the run per day/week/month of their creation time (a group includes its themes)."""
    detail = _detail_or_404(db, theme_id, run_id)
    return theme_trend(db, theme_id, run_id=detail["run_id"], bucket=bucket)


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
    run = _detail_or_404(db, theme_id, run_id)["run_id"]
    rows = [] if run is None else list_conversations(db, limit=limit + 1, offset=offset, theme_id=theme_id, run_id=run)
    return page_of(rows, limit, offset)
