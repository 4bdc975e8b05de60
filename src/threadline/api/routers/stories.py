"""Stories of a run's snapshot: list with filters and sort, one with evidence, history, edits, Markdown export."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import JSONResponse, PlainTextResponse

from threadline.api.schemas import ExportOut, ExportRequest, Problem, StoryHistory, StoryOut, StoryPatch, StoryStatus
from threadline.delivery.trackers import (
    AlreadyLinked,
    ExportFailed,
    LinkRefused,
    export_stories_async,
    link_story_async,
)
from threadline.engine.curation import CurationError, actor_of_token, record_exports, update_story
from threadline.read.stories import StorySort, get_story, list_stories, story_history, story_runs, story_view
from threadline.read.themes import theme_articles
from threadline.server.deps import ApiAuth, DbSession, ReadDb
from threadline.server.params import (
    MAX_ID,
    IdPath,
    LimitQuery,
    OffsetQuery,
    Page,
    RunQuery,
    SourcesQuery,
    page_of,
    pick_or_error,
)
from threadline.stories.export import to_markdown

router = APIRouter(tags=["stories"], responses={401: {"model": Problem}})


def _list(db, run_id: int | None, source: list[str] | None, **filters) -> list[dict]:
    run = pick_or_error(db, run_id, source)
    return list_stories(db, run_id=run.id if run else None, **filters)


@router.get("/stories", response_model=Page[StoryOut], responses={404: {"model": Problem}, 422: {"model": Problem}})
async def stories(
    read: ReadDb,
    _: ApiAuth,
    limit: LimitQuery = 50,
    offset: OffsetQuery = 0,
    run_id: RunQuery = None,
    source: SourcesQuery = None,
    status: StoryStatus | None = None,
    severity: Annotated[str | None, Query(max_length=16)] = None,
    theme_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    sort: StorySort = "rank",
) -> dict:
    """Stories of one run's snapshot (default: the latest succeeded run of the latest scope), with evidence."""
    rows = await read(
        _list,
        run_id,
        source,
        limit=limit + 1,
        offset=offset,
        status=status,
        severity=severity,
        theme_id=theme_id,
        sort=sort,
    )
    return page_of(rows, limit, offset)


def _view_or_404(db, story_id: int, run_id: int | None) -> dict:
    found = story_view(db, story_id, run_id)
    if found is None:
        raise HTTPException(404, detail="no such story" if run_id is None else "no such story in that run")
    return found


@router.get("/stories/{story_id}", response_model=StoryOut, responses={404: {"model": Problem}})
def story(story_id: IdPath, db: DbSession, _: ApiAuth, run_id: RunQuery = None) -> dict:
    """A story as a run wrote it (default: its newest snapshot), with a person's status and edits and related articles."""
    view = _view_or_404(db, story_id, run_id)
    return {**view, "articles": theme_articles(db, view["run_id"], view["theme_id"])}


@router.get("/stories/{story_id}/history", response_model=StoryHistory, responses={404: {"model": Problem}})
def history(story_id: IdPath, db: DbSession, _: ApiAuth) -> dict:
    """The runs with a snapshot of the story (rank, size) and what people did to it and its theme."""
    if get_story(db, story_id) is None:
        raise HTTPException(404, detail="no such story")
    return {"id": story_id, "runs": story_runs(db, story_id), "history": story_history(db, story_id)}


@router.patch("/stories/{story_id}", response_model=StoryOut, responses={404: {"model": Problem}})
def edit_story(story_id: IdPath, patch: StoryPatch, db: DbSession, token_id: ApiAuth) -> dict:
    """Change status and/or text. Text a person writes is shown with every snapshot and kept by later runs."""
    found = get_story(db, story_id)
    if found is None:
        raise HTTPException(404, detail="no such story")
    try:
        update_story(db, found, patch.model_dump(exclude_unset=True), actor_of_token(db, token_id))
    except CurationError as exc:
        db.rollback()
        raise HTTPException(exc.status, detail=str(exc)) from None
    db.commit()
    return _view_or_404(db, story_id, None)


@router.get(
    "/stories/{story_id}/export.md",
    response_class=JSONResponse,  # media type of the error responses; the 200 is text/markdown
    responses={200: {"content": {"text/markdown": {"schema": {"type": "string"}}}}, 404: {"model": Problem}},
)
def export_story(story_id: IdPath, db: DbSession, token_id: ApiAuth, run_id: RunQuery = None) -> PlainTextResponse:
    """The story with its evidence as Markdown (the same format as `threadline report`); recorded as an export."""
    found = _view_or_404(db, story_id, run_id)
    text = to_markdown([found], title=found["title"])
    record_exports(db, [story_id], actor_of_token(db, token_id), run_id=found["run_id"], target="markdown")
    db.commit()
    return PlainTextResponse(
        text,
        media_type="text/markdown; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="story-{story_id}.md"'},
    )


@router.post(
    "/stories/{story_id}/export",
    response_model=ExportOut,
    responses={404: {"model": Problem}, 409: {"model": Problem}, 502: {"model": Problem}},
)
async def export_to_tracker(story_id: IdPath, body: ExportRequest, read: ReadDb, token_id: ApiAuth) -> dict:
    """Send the story to a tracker: one item per story and tracker, updated (never duplicated) when sent again.

    502 with one line naming the tracker when it cannot be reached as configured (refused token,
    missing project); a failure of this story alone is in the answer (`failed`) and a dead letter.
    With `link`, the story is linked to that existing item instead (404 when it is missing, 409
    when the story already has an item in that tracker).
    """
    found, actor = await read(lambda db: (get_story(db, story_id) is not None, actor_of_token(db, token_id)))
    if not found:
        raise HTTPException(404, detail="no such story")
    try:  # the export takes its own connections (a lock connection per story), outside the read rationing
        if body.link is not None:
            report = await link_story_async(read.engine, body.tracker, story_id, body.link, actor=actor)
        else:
            report = await export_stories_async(read.engine, body.tracker, [story_id], actor=actor)
    except ExportFailed as exc:
        if isinstance(exc, AlreadyLinked):
            status = 409
        elif isinstance(exc, LinkRefused) or str(exc).startswith("no tracker named"):
            status = 404
        else:
            status = 502
        raise HTTPException(status, detail=str(exc)) from None
    return report.as_dict()
