"""Dashboard pages: server-rendered Jinja2, sync routes (run in the threadpool), forms with CSRF."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from threadline.db.models import STORY_STATUSES, DeadLetter
from threadline.engine import service
from threadline.read import runs as run_read
from threadline.read.conversations import MAX_QUERY_CHARS, get_conversation, list_conversations
from threadline.read.dead_letters import list_dead_letters
from threadline.read.overview import overview
from threadline.read.sources import list_sources
from threadline.read.stories import (
    SORT_COLUMNS,
    StorySort,
    evidence_in_context,
    get_story,
    list_stories,
    story_out,
    update_story,
)
from threadline.read.themes import default_run_id, theme_detail, theme_sparklines, theme_tree, theme_trend
from threadline.server.params import MAX_ID, MAX_OFFSET, IdPath
from threadline.server.sessions import (
    CSRF_FIELD,
    LOGIN_CSRF_COOKIE,
    LOGIN_CSRF_MAX_AGE_S,
    SESSION_COOKIE,
    SESSION_MAX_AGE_S,
    csrf_matches,
)
from threadline.server.tokens import MAX_TOKEN_CHARS, verify_token
from threadline.stories.export import to_markdown
from threadline.text.pii import mask_for_display, mask_span_for_display
from threadline.web.auth import DbSession, FormSession, LoginRequired, PageSession, new_login_csrf, safe_next
from threadline.web.charts import bar_chart, sparkline

logger = logging.getLogger(__name__)

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
TEMPLATES.env.globals.update(sparkline=sparkline, csrf_field=CSRF_FIELD)


def _when(value: datetime | str | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A timestamp (datetime or ISO string, as services return either) for display."""
    if value is None:
        return ""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).strftime(fmt)
        except ValueError:
            return value
    return value.strftime(fmt)


TEMPLATES.env.filters["when"] = _when
# Every customer-derived text a template prints goes through `masked` (personal data hidden unless configured off).
TEMPLATES.env.filters["masked"] = lambda value: mask_for_display(value) if isinstance(value, str) else value


def _masked_contexts(contexts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Evidence contexts with every message segment masked, judged on the whole message.

    A phone number cut by a highlight boundary is still recognised: each segment is masked
    as a span of the full text (`mask_span_for_display`), not on its own.
    """
    for block in contexts:
        for message in block["messages"]:
            full = "".join(text for text, _ in message["segments"])
            masked, cursor = [], 0
            for text, hit in message["segments"]:
                masked.append((mask_span_for_display(full, cursor, cursor + len(text)), hit))
                cursor += len(text)
            message["segments"] = masked
        block["quotes"] = [mask_for_display(q) for q in block["quotes"]]
    return contexts


PAGE_SIZE = 50  # rows per dashboard list page
DECISIONS = ("accepted", "rejected", "candidate")  # statuses a person sets from the story page

router = APIRouter(include_in_schema=False)


def render(request: Request, name: str, session, **context: Any) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(
        request, name, {"csrf": session.csrf if session else "", "signed_in": session is not None, **context}
    )


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


# --- sign-in ------------------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
def login_form(
    request: Request, next: Annotated[str | None, Query(max_length=2000)] = None, error: str | None = None
) -> HTMLResponse:  # noqa: A002
    value = new_login_csrf()
    response = TEMPLATES.TemplateResponse(
        request,
        "login.html",
        {"login_csrf": value, "next": safe_next(next), "error": error == "1", "signed_in": False, "csrf": ""},
        status_code=401 if error == "1" else 200,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        value,
        max_age=LOGIN_CSRF_MAX_AGE_S,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/login",
    )
    return response


@router.post("/login")
def login(
    request: Request,
    db: DbSession,
    token: Annotated[str, Form(max_length=MAX_TOKEN_CHARS)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",  # noqa: A002
) -> Response:
    if not csrf_matches(request.cookies.get(LOGIN_CSRF_COOKIE, ""), csrf_token):
        raise HTTPException(403, detail="the sign-in form expired; reload it and try again")
    row = verify_token(db, token.strip())
    if row is None:
        logger.info("dashboard sign-in refused")
        return see_other("/login?" + urlencode({"next": safe_next(next), "error": "1"}))
    cookie, _ = request.app.state.signer.issue(row.id)
    response = see_other(safe_next(next))
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=SESSION_MAX_AGE_S,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(_: FormSession) -> Response:
    response = see_other("/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# --- overview, themes -----------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def overview_page(request: Request, db: DbSession, session: PageSession) -> HTMLResponse:
    data = overview(db)
    chart = bar_chart([(p["start"], p["count"]) for p in data["volume"]])
    return render(request, "overview.html", session, data=data, chart=chart)


@router.get("/themes", response_class=HTMLResponse)
def themes_page(
    request: Request, db: DbSession, session: PageSession, run_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None
) -> HTMLResponse:
    run = default_run_id(db, run_id)
    tree = theme_tree(db, run_id=run) if run is not None else []
    return render(request, "themes.html", session, tree=tree, series=theme_sparklines(db, run), run_id=run)


@router.get("/themes/{theme_id}", response_class=HTMLResponse)
def theme_page(
    request: Request,
    db: DbSession,
    session: PageSession,
    theme_id: IdPath,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> HTMLResponse:
    theme = theme_detail(db, theme_id)
    if theme is None:
        raise HTTPException(404, detail="no such theme")
    trend = theme_trend(db, theme_id, run_id=theme["run_id"])
    rows = (
        []
        if theme["run_id"] is None
        else list_conversations(db, limit=PAGE_SIZE + 1, offset=offset, theme_id=theme_id, run_id=theme["run_id"])
    )
    chart = bar_chart(
        [(p["start"], p["count"]) for p in trend["points"]], label=f"{theme['name']}: conversations per week"
    )
    return render(
        request,
        "theme.html",
        session,
        theme=theme,
        chart=chart,
        conversations=rows[:PAGE_SIZE],
        offset=offset,
        more=len(rows) > PAGE_SIZE,
        page_size=PAGE_SIZE,
    )


# --- stories ----------------------------------------------------------------------------------


@router.get("/stories", response_class=HTMLResponse)
def stories_page(
    request: Request,
    db: DbSession,
    session: PageSession,
    status: Annotated[str | None, Query(max_length=16)] = None,
    sort: Annotated[str, Query(max_length=16)] = "rank",
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    run_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> HTMLResponse:
    status = status if status in STORY_STATUSES else None
    chosen: StorySort = sort if sort in SORT_COLUMNS else "rank"  # type: ignore[assignment]
    rows = list_stories(db, limit=PAGE_SIZE + 1, offset=offset, status=status, sort=chosen, run_id=run_id)
    return render(
        request,
        "stories.html",
        session,
        stories=rows[:PAGE_SIZE],
        status=status,
        sort=chosen,
        run_id=run_id,
        statuses=STORY_STATUSES,
        sorts=list(SORT_COLUMNS),
        offset=offset,
        more=len(rows) > PAGE_SIZE,
        page_size=PAGE_SIZE,
    )


def _story_or_404(db, story_id: int):
    story = get_story(db, story_id)
    if story is None:
        raise HTTPException(404, detail="no such story")
    return story


@router.get("/stories/{story_id}", response_class=HTMLResponse)
def story_page(
    request: Request, db: DbSession, session: PageSession, story_id: IdPath, saved: str | None = None
) -> HTMLResponse:
    story = _story_or_404(db, story_id)
    return render(
        request,
        "story.html",
        session,
        story=story_out(db, story),
        contexts=_masked_contexts(evidence_in_context(db, story_id)),
        decisions=DECISIONS,
        saved=saved,
    )


@router.post("/stories/{story_id}/status")
def story_status(
    db: DbSession, _: FormSession, story_id: IdPath, status: Annotated[str, Form(max_length=16)]
) -> Response:
    if status not in STORY_STATUSES:
        raise HTTPException(422, detail=f"status must be one of {', '.join(STORY_STATUSES)}")
    update_story(db, _story_or_404(db, story_id), {"status": status})
    db.commit()
    return see_other(f"/stories/{story_id}?saved=status")


@router.post("/stories/{story_id}/edit")
def story_edit(
    db: DbSession,
    _: FormSession,
    story_id: IdPath,
    title: Annotated[str, Form(min_length=1, max_length=300)],
    problem: Annotated[str, Form(min_length=1, max_length=20_000)],
) -> Response:
    update_story(db, _story_or_404(db, story_id), {"title": title.strip(), "problem": problem.strip()})
    db.commit()
    return see_other(f"/stories/{story_id}?saved=text")


@router.get("/stories/{story_id}/export.md")
def story_export(db: DbSession, _: PageSession, story_id: IdPath) -> PlainTextResponse:
    story = _story_or_404(db, story_id)
    return PlainTextResponse(
        to_markdown([story_out(db, story)], title=story.title),
        media_type="text/markdown; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="story-{story_id}.md"'},
    )


# --- conversations ----------------------------------------------------------------------------


@router.get("/conversations", response_class=HTMLResponse)
def conversations_page(
    request: Request,
    db: DbSession,
    session: PageSession,
    q: Annotated[str | None, Query(max_length=MAX_QUERY_CHARS)] = None,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> HTMLResponse:
    rows = list_conversations(db, limit=PAGE_SIZE + 1, offset=offset, q=(q or "").strip() or None)
    return render(
        request,
        "conversations.html",
        session,
        conversations=rows[:PAGE_SIZE],
        q=q or "",
        offset=offset,
        more=len(rows) > PAGE_SIZE,
        page_size=PAGE_SIZE,
    )


@router.get("/conversations/{conversation_id}", response_class=HTMLResponse)
def conversation_page(request: Request, db: DbSession, session: PageSession, conversation_id: IdPath) -> HTMLResponse:
    found = get_conversation(db, conversation_id)
    if found is None:
        raise HTTPException(404, detail="no such conversation")
    return render(request, "conversation.html", session, c=found)


# --- runs and dead letters --------------------------------------------------------------------


def _parse_day(value: str, field: str) -> datetime | None:
    if not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise HTTPException(422, detail=f"{field} must be a date like 2026-09-01") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@router.get("/runs", response_class=HTMLResponse)
def runs_page(
    request: Request,
    db: DbSession,
    session: PageSession,
    error: str | None = None,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> HTMLResponse:
    rows = run_read.list_runs(db, limit=PAGE_SIZE + 1, offset=offset)
    return render(
        request,
        "runs.html",
        session,
        runs=rows[:PAGE_SIZE],
        error=error,
        sources=list_sources(db, limit=PAGE_SIZE, offset=0),
        offset=offset,
        more=len(rows) > PAGE_SIZE,
        page_size=PAGE_SIZE,
    )


@router.post("/runs")
def start_run(
    db: DbSession,
    _: FormSession,
    source: Annotated[str, Form(max_length=200)] = "",
    since: Annotated[str, Form(max_length=40)] = "",
    until: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    try:
        run_id = service.enqueue_run(
            db, source=source.strip() or None, since=_parse_day(since, "since"), until=_parse_day(until, "until")
        )
    except service.RunError as exc:
        db.rollback()
        return see_other("/runs?" + urlencode({"error": str(exc)[:300]}))
    db.commit()
    return see_other(f"/runs/{run_id}")


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(
    request: Request, db: DbSession, session: PageSession, run_id: IdPath, error: str | None = None
) -> HTMLResponse:
    view = run_read.run_view(db, run_id)
    if view is None:
        raise HTTPException(404, detail="no such run")
    return render(request, "run.html", session, run=view, error=error)


@router.get("/runs/{run_id}/progress.json")
def run_progress(db: DbSession, _: PageSession, run_id: IdPath) -> JSONResponse:
    """What the run page's polling loop reads: status, phase, progress, counters."""
    view = run_read.run_view(db, run_id)
    if view is None:
        raise HTTPException(404, detail="no such run")
    keys = ("id", "status", "phase", "progress", "dead_letters", "error")
    return JSONResponse({k: view.get(k) for k in keys} | {"counters": view.get("counters") or {}})


@router.post("/runs/{run_id}/{action}")
def run_action(db: DbSession, _: FormSession, run_id: IdPath, action: str) -> Response:
    method = {"stop": "request_stop", "resume": "resume_run"}.get(action)
    if method is None:
        raise HTTPException(404, detail="no such action")
    try:
        getattr(service, method)(db, run_id)
    except service.RunError as exc:
        db.rollback()
        return see_other(f"/runs/{run_id}?" + urlencode({"error": str(exc)[:300]}))
    db.commit()
    return see_other(f"/runs/{run_id}")


@router.get("/dead-letters", response_class=HTMLResponse)
def dead_letters_page(
    request: Request,
    db: DbSession,
    session: PageSession,
    run_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    note: str | None = None,
) -> HTMLResponse:
    rows = list_dead_letters(db, run_id=run_id, limit=PAGE_SIZE + 1, offset=offset)
    return render(
        request,
        "dead_letters.html",
        session,
        rows=rows[:PAGE_SIZE],
        run_id=run_id,
        offset=offset,
        more=len(rows) > PAGE_SIZE,
        page_size=PAGE_SIZE,
        note=note,
    )


@router.post("/dead-letters/{dead_letter_id}/retry")
def retry_dead_letter(db: DbSession, _: FormSession, dead_letter_id: IdPath) -> Response:
    if db.get(DeadLetter, dead_letter_id) is None:
        raise HTTPException(404, detail="no such dead letter")
    retried = bool(service.retry_dead_letter(db, dead_letter_id))
    db.commit()
    return see_other("/dead-letters?" + urlencode({"note": "retried" if retried else "already retried"}))


def install(app: FastAPI) -> None:
    """Mount the pages and turn `LoginRequired` into a redirect to the sign-in form."""

    @app.exception_handler(LoginRequired)
    def _login(request: Request, exc: LoginRequired) -> RedirectResponse:
        return see_other(exc.next_path)

    app.include_router(router)
