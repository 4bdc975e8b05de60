"""Stories: list with filters and sort, one with evidence, edit title/text/status, Markdown export."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import JSONResponse, PlainTextResponse

from threadline.api.schemas import Problem, StoryOut, StoryPatch, StoryStatus
from threadline.read.stories import StorySort, get_story, list_stories, story_out, update_story
from threadline.server.deps import ApiAuth, DbSession, ReadDb
from threadline.server.params import MAX_ID, IdPath, LimitQuery, OffsetQuery, Page, page_of
from threadline.stories.export import to_markdown

router = APIRouter(tags=["stories"], responses={401: {"model": Problem}})


@router.get("/stories", response_model=Page[StoryOut])
async def stories(
    read: ReadDb,
    _: ApiAuth,
    limit: LimitQuery = 50,
    offset: OffsetQuery = 0,
    run_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Run (default: the latest succeeded run).")
    ] = None,
    status: StoryStatus | None = None,
    severity: Annotated[str | None, Query(max_length=16)] = None,
    theme_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    sort: StorySort = "rank",
) -> dict:
    rows = await read(
        list_stories,
        limit=limit + 1,
        offset=offset,
        run_id=run_id,
        status=status,
        severity=severity,
        theme_id=theme_id,
        sort=sort,
    )
    return page_of(rows, limit, offset)


@router.get("/stories/{story_id}", response_model=StoryOut, responses={404: {"model": Problem}})
def story(story_id: IdPath, db: DbSession, _: ApiAuth) -> dict:
    found = get_story(db, story_id)
    if found is None:
        raise HTTPException(404, detail="no such story")
    return story_out(db, found)


@router.patch("/stories/{story_id}", response_model=StoryOut, responses={404: {"model": Problem}})
def edit_story(story_id: IdPath, patch: StoryPatch, db: DbSession, _: ApiAuth) -> dict:
    """Change status and/or text. Text edits set `edited`, so later runs keep the person's words."""
    found = get_story(db, story_id)
    if found is None:
        raise HTTPException(404, detail="no such story")
    update_story(db, found, patch.model_dump(exclude_unset=True))
    db.commit()
    return story_out(db, found)


@router.get(
    "/stories/{story_id}/export.md",
    response_class=JSONResponse,  # media type of the error responses; the 200 is text/markdown
    responses={200: {"content": {"text/markdown": {"schema": {"type": "string"}}}}, 404: {"model": Problem}},
)
def export_story(story_id: IdPath, db: DbSession, _: ApiAuth) -> PlainTextResponse:
    """The story with its evidence as Markdown (the same format as `threadline report`)."""
    found = get_story(db, story_id)
    if found is None:
        raise HTTPException(404, detail="no such story")
    text = to_markdown([story_out(db, found)], title=found.title)
    return PlainTextResponse(
        text,
        media_type="text/markdown; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="story-{story_id}.md"'},
    )
