"""Dashboard pages: server-rendered Jinja2, sync routes (run in the threadpool), forms with CSRF."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Form, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader
from markupsafe import Markup, escape
from sqlalchemy import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException

from threadline.db.models import DeadLetter
from threadline.db.tables import STORY_STATUSES
from threadline.delivery.trackers import ExportFailed, export_stories
from threadline.engine import service
from threadline.engine.curation import (
    CurationError,
    actor_of_token,
    merge_theme,
    record_exports,
    rename_theme,
    set_keep_separate,
    update_story,
)
from threadline.exporters.trackers import list_trackers
from threadline.read import runs as run_read
from threadline.read.conversations import get_conversation, list_conversations
from threadline.read.dead_letters import list_dead_letters
from threadline.read.display import NOT_RECORDED
from threadline.read.documentation import documentation
from threadline.read.overview import overview
from threadline.read.sources import list_sources
from threadline.read.stories import (
    SORT_COLUMNS,
    StorySort,
    evidence_in_context,
    get_story,
    list_stories,
    story_history,
    story_runs,
    story_view,
)
from threadline.read.themes import (
    theme_articles,
    theme_detail,
    theme_sparklines,
    theme_tree,
    theme_trend,
    unassigned_count,
)
from threadline.read.views import RunRef, list_scopes, pick_run, run_ref, runs_of_scope, scope_run
from threadline.server.deps import client_of, refuse_if_throttled
from threadline.server.params import (
    MAX_ID,
    STORABLE,
    WITHIN_QUERY_CHARS,
    WITHIN_STORY_TEXT_CHARS,
    WITHIN_TITLE_CHARS,
    EntityQuery,
    IdPath,
    OffsetQuery,
)
from threadline.server.sessions import (
    CSRF_FIELD,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    csrf_matches,
    end_session,
    start_session,
)
from threadline.server.tokens import MAX_TOKEN_CHARS, verify_token
from threadline.stories.export import to_markdown
from threadline.text.safety import mark_invisible, safe_link
from threadline.web.auth import DbSession, FormSession, LoginRequired, PageSession, new_login_csrf, safe_next
from threadline.web.charts import bar_chart, sparkline

logger = logging.getLogger(__name__)


def _finalize(value: Any) -> Any:
    """Every `{{ ... }}` output: bidi controls and zero-width characters in text shown as visible markers.

    Customer text can carry U+202E and friends to reorder what a reader sees, or zero-width
    characters to hide words; as markers they cannot. Runs before autoescape; `Markup`
    (already safe HTML built by the server, e.g. charts) is left alone.
    """
    if isinstance(value, str) and not isinstance(value, Markup):
        return mark_invisible(value)
    return value


def _verbatim(value: Any) -> Markup:
    """Escaped text kept exactly (no markers): for form fields whose value is submitted back unchanged."""
    return escape("" if value is None else value)


TEMPLATES = Jinja2Templates(
    env=Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        finalize=_finalize,
    )
)
TEMPLATES.env.globals.update(sparkline=sparkline, csrf_field=CSRF_FIELD)
TEMPLATES.env.filters["safe_link"] = safe_link
TEMPLATES.env.filters["verbatim"] = _verbatim


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
        max_age=request.app.state.settings.api.login_csrf_max_age_s,
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
    token: Annotated[str, Form(max_length=MAX_TOKEN_CHARS), STORABLE] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",  # noqa: A002
) -> Response:
    if not csrf_matches(request.cookies.get(LOGIN_CSRF_COOKIE, ""), csrf_token):
        raise HTTPException(403, detail="the sign-in form expired; reload it and try again")
    refuse_if_throttled(request)
    row = verify_token(db, token.strip())
    if row is None:
        request.app.state.auth_throttle.failed(client_of(request))
        logger.info("dashboard sign-in refused")
        return see_other("/login?" + urlencode({"next": safe_next(next), "error": "1"}))
    cookie, session = request.app.state.signer.issue(row.id)
    start_session(db, session, request.app.state.signer.max_age_s)
    db.commit()
    response = see_other(safe_next(next))
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=request.app.state.signer.max_age_s,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(request: Request, db: DbSession, session: FormSession) -> Response:
    """Sign out: the session ends on the server, so a copy of the cookie stops working too."""
    end_session(db, session)
    db.commit()
    request.app.state.token_cache.forget_session(session.sid_hash)
    response = see_other("/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# --- overview, themes -----------------------------------------------------------------------


RunParam = Annotated[int | None, Query(ge=1, le=MAX_ID)]
ScopeParam = Annotated[int | None, Query(ge=1, le=MAX_ID)]


def selected_run(db, run_id: int | None, scope: int | None) -> RunRef | None:
    """The run a page shows: the picked run (when it belongs to the picked scope), else the scope's latest
    succeeded run, else the latest succeeded run of the latest scope."""
    if run_id is not None:
        ref = run_ref(db, run_id)
        if ref is not None and (scope is None or ref.scope_id == scope):
            return ref
    if scope is not None:
        return scope_run(db, scope)
    return pick_run(db)


def picker(db, run: RunRef | None, scope: int | None, path: str) -> dict[str, Any]:
    """What the scope and run picker offers: every scope, and the runs of the shown (or picked) scope."""
    shown_scope = run.scope_id if run is not None else scope
    return {
        "path": path,
        "scopes": list_scopes(db),
        "runs": runs_of_scope(db, shown_scope) if shown_scope is not None else [],
        "scope_id": shown_scope,
        "run": run,
    }


@router.get("/", response_class=HTMLResponse)
def overview_page(
    request: Request, db: DbSession, session: PageSession, run_id: RunParam = None, scope: ScopeParam = None
) -> HTMLResponse:
    run = selected_run(db, run_id, scope)
    data = overview(db, run)
    chart = bar_chart(
        [(p["start"], p["count"]) for p in data["volume"]],
        label=f"conversations per {data['bucket']}",
        partial_last=bool(data["volume"] and data["volume"][-1]["partial"]),
    )
    return render(request, "overview.html", session, data=data, chart=chart, pick=picker(db, run, scope, "/"), run=run)


@router.get("/documentation", response_class=HTMLResponse)
def documentation_page(
    request: Request, db: DbSession, session: PageSession, run_id: RunParam = None, scope: ScopeParam = None
) -> HTMLResponse:
    """Documentation gaps and confusing articles of a run, with their example conversations."""
    run = selected_run(db, run_id, scope)
    data = documentation(db, run.id) if run else {"run_id": None, "gaps": [], "confusing_articles": []}
    return render(
        request, "documentation.html", session, data=data, run=run, pick=picker(db, run, scope, "/documentation")
    )


@router.get("/themes", response_class=HTMLResponse)
def themes_page(
    request: Request, db: DbSession, session: PageSession, run_id: RunParam = None, scope: ScopeParam = None
) -> HTMLResponse:
    run = selected_run(db, run_id, scope)
    tree = theme_tree(db, run_id=run.id if run else None)
    series, bucket_days = theme_sparklines(db, run)
    return render(
        request,
        "themes.html",
        session,
        tree=tree,
        unassigned=unassigned_count(db, run.id if run else None),
        series=series,
        bucket_days=bucket_days,
        run=run,
        pick=picker(db, run, scope, "/themes"),
    )


@router.get("/themes/{theme_id}", response_class=HTMLResponse)
def theme_page(
    request: Request,
    db: DbSession,
    session: PageSession,
    theme_id: IdPath,
    offset: OffsetQuery = 0,
    run_id: RunParam = None,
    saved: str | None = None,
    error: str | None = None,
) -> HTMLResponse:
    theme = theme_detail(db, theme_id, run_id)
    if theme is None:
        raise HTTPException(404, detail="no such theme")
    trend = theme_trend(db, theme_id, run_id=theme["run_id"]) if theme["in_run"] else {"points": []}
    rows = (
        []
        if not theme["in_run"]
        else list_conversations(db, limit=PAGE_SIZE + 1, offset=offset, theme_id=theme_id, run_id=theme["run_id"])
    )
    chart = bar_chart(
        [(p["start"], p["count"]) for p in trend["points"]], label=f"{theme['name']}: conversations per week"
    )
    siblings = [
        t
        for group in (theme_tree(db, run_id=theme["run_id"]) if theme["run_id"] and theme["level"] == 1 else [])
        for t in group["themes"]
        if t["id"] != theme_id and not t["merged_into"]
    ]
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
        siblings=siblings,
        saved=saved,
        error=error,
        not_recorded=NOT_RECORDED,
    )


def _curate(db, theme_id: int, action) -> Response:
    try:
        action()
    except CurationError as exc:
        db.rollback()
        if exc.status == 404:
            raise HTTPException(404, detail=str(exc)) from None
        return see_other(f"/themes/{theme_id}?" + urlencode({"error": str(exc)[:300]}))
    db.commit()
    return see_other(f"/themes/{theme_id}?saved=1")


@router.post("/themes/{theme_id}/rename")
def theme_rename(
    db: DbSession, form: FormSession, theme_id: IdPath, name: Annotated[str, Form(max_length=200), STORABLE] = ""
) -> Response:
    actor = actor_of_token(db, form.token_id)
    return _curate(db, theme_id, lambda: rename_theme(db, theme_id, name, actor))


@router.post("/themes/{theme_id}/keep-separate")
def theme_keep_separate(
    db: DbSession, form: FormSession, theme_id: IdPath, keep: Annotated[str, Form(max_length=8)] = "on"
) -> Response:
    actor = actor_of_token(db, form.token_id)
    return _curate(db, theme_id, lambda: set_keep_separate(db, theme_id, keep == "on", actor))


@router.post("/themes/{theme_id}/merge")
def theme_merge(
    db: DbSession, form: FormSession, theme_id: IdPath, into: Annotated[int, Form(ge=1, le=MAX_ID)]
) -> Response:
    actor = actor_of_token(db, form.token_id)
    return _curate(db, theme_id, lambda: merge_theme(db, theme_id, into, actor))


# --- stories ----------------------------------------------------------------------------------


@router.get("/stories", response_class=HTMLResponse)
def stories_page(
    request: Request,
    db: DbSession,
    session: PageSession,
    status: Annotated[str | None, Query(max_length=16)] = None,
    sort: Annotated[str, Query(max_length=16)] = "rank",
    offset: OffsetQuery = 0,
    run_id: RunParam = None,
    scope: ScopeParam = None,
) -> HTMLResponse:
    status = status if status in STORY_STATUSES else None
    chosen: StorySort = sort if sort in SORT_COLUMNS else "rank"  # type: ignore[assignment]
    run = selected_run(db, run_id, scope)
    rows = list_stories(
        db, run_id=run.id if run else None, limit=PAGE_SIZE + 1, offset=offset, status=status, sort=chosen
    )
    return render(
        request,
        "stories.html",
        session,
        stories=rows[:PAGE_SIZE],
        status=status,
        sort=chosen,
        run=run,
        pick=picker(db, run, scope, "/stories"),
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


def _view_or_404(db, story_id: int, run_id: int | None) -> dict[str, Any]:
    view = story_view(db, story_id, run_id)
    if view is None:
        raise HTTPException(404, detail="no such story")
    return view


@router.get("/stories/{story_id}", response_class=HTMLResponse)
def story_page(
    request: Request,
    db: DbSession,
    session: PageSession,
    story_id: IdPath,
    saved: str | None = None,
    run_id: RunParam = None,
    sent: Annotated[str | None, Query(max_length=200)] = None,
    failed: Annotated[str | None, Query(max_length=1000)] = None,
) -> HTMLResponse:
    story = _view_or_404(db, story_id, run_id)
    return render(
        request,
        "story.html",
        session,
        story=story,
        trackers=list_trackers(db),
        sent=sent,
        failed=failed,
        contexts=evidence_in_context(db, story),
        decisions=DECISIONS,
        saved=saved,
        runs=story_runs(db, story_id),
        history=story_history(db, story_id),
        run=run_ref(db, story["run_id"]),
        articles=theme_articles(db, story["run_id"], story["theme_id"]),
    )


@router.post("/stories/{story_id}/status")
def story_status(
    db: DbSession, form: FormSession, story_id: IdPath, status: Annotated[str, Form(max_length=16)]
) -> Response:
    if status not in STORY_STATUSES:
        raise HTTPException(422, detail=f"status must be one of {', '.join(STORY_STATUSES)}")
    update_story(db, _story_or_404(db, story_id), {"status": status}, actor_of_token(db, form.token_id))
    db.commit()
    return see_other(f"/stories/{story_id}?saved=status")


@router.post("/stories/{story_id}/edit")
def story_edit(
    db: DbSession,
    form: FormSession,
    story_id: IdPath,
    title: Annotated[str, Form(min_length=1), WITHIN_TITLE_CHARS, STORABLE],
    problem: Annotated[str, Form(min_length=1), WITHIN_STORY_TEXT_CHARS, STORABLE],
) -> Response:
    story = _story_or_404(db, story_id)
    current = _view_or_404(db, story_id, None)
    changes = {
        field: value.strip()
        for field, value in (("title", title), ("problem", problem))
        if value.strip() != (current[field] or "").strip()  # only what the person changed becomes theirs
    }
    update_story(db, story, changes, actor_of_token(db, form.token_id))
    db.commit()
    return see_other(f"/stories/{story_id}?saved=text")


@router.post("/stories/{story_id}/send")
def story_send(
    db: DbSession, form: FormSession, story_id: IdPath, tracker: Annotated[str, Form(min_length=1, max_length=200)]
) -> Response:
    """ "Send to ...": export the story to a tracker (one item per story and tracker), then show its link."""
    _story_or_404(db, story_id)
    actor = actor_of_token(db, form.token_id)
    engine = db.get_bind()
    if not isinstance(engine, Engine):  # sessions here are bound to an engine, never to one connection
        raise TypeError("the dashboard's session is not bound to an engine")
    db.close()  # the export takes its own connections; do not hold this one meanwhile
    try:
        report = export_stories(engine, tracker, [story_id], actor=actor)
    except ExportFailed as exc:
        return see_other(f"/stories/{story_id}?{urlencode({'failed': str(exc)})}")
    outcome = report.outcomes[0]
    if outcome.action == "failed":
        return see_other(f"/stories/{story_id}?{urlencode({'failed': outcome.error or 'export failed'})}")
    return see_other(f"/stories/{story_id}?{urlencode({'sent': tracker})}")


@router.get("/stories/{story_id}/export.md")
def story_export(db: DbSession, session: PageSession, story_id: IdPath, run_id: RunParam = None) -> PlainTextResponse:
    story = _view_or_404(db, story_id, run_id)
    record_exports(db, [story_id], actor_of_token(db, session.token_id), run_id=story["run_id"], target="markdown")
    db.commit()
    return PlainTextResponse(
        to_markdown([story], title=story["title"]),
        media_type="text/markdown; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="story-{story_id}.md"'},
    )


# --- conversations ----------------------------------------------------------------------------


@router.get("/conversations", response_class=HTMLResponse)
def conversations_page(
    request: Request,
    db: DbSession,
    session: PageSession,
    q: Annotated[Annotated[str, WITHIN_QUERY_CHARS] | None, Query()] = None,
    offset: OffsetQuery = 0,
    unassigned: bool = False,
    run_id: RunParam = None,
    entity: EntityQuery = None,
) -> HTMLResponse:
    """Newest conversations, optionally searched (`q`), narrowed to an entity, or a run's unassigned ones.

    `entity` is the API's `?entity=` filter (the same read function): a value or ``type:value``.
    """
    run = selected_run(db, run_id, None) if unassigned else None
    rows = list_conversations(
        db,
        limit=PAGE_SIZE + 1,
        offset=offset,
        q=(q or "").strip() or None,
        run_id=run.id if run else None,
        unassigned=run is not None,
        entity=entity,
    )
    return render(
        request,
        "conversations.html",
        session,
        unassigned_run=run.id if run else None,
        conversations=rows[:PAGE_SIZE],
        q=q or "",
        entity=entity or "",
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


def _runs_page(request: Request, db, session, *, error: str | None, offset: int, status_code: int = 200, form=None):
    rows = run_read.list_runs(db, limit=PAGE_SIZE + 1, offset=offset)
    response = render(
        request,
        "runs.html",
        session,
        runs=rows[:PAGE_SIZE],
        error=error,
        sources=list_sources(db, limit=PAGE_SIZE, offset=0),
        offset=offset,
        more=len(rows) > PAGE_SIZE,
        page_size=PAGE_SIZE,
        form=form or {},
    )
    response.status_code = status_code
    return response


@router.get("/runs", response_class=HTMLResponse)
def runs_page(
    request: Request,
    db: DbSession,
    session: PageSession,
    error: str | None = None,
    offset: OffsetQuery = 0,
) -> HTMLResponse:
    return _runs_page(request, db, session, error=error, offset=offset)


@router.post("/runs")
def start_run(
    request: Request,
    db: DbSession,
    session: FormSession,
    source: Annotated[list[Annotated[str, STORABLE]] | None, Form(max_length=100)] = None,
    since: Annotated[str, Form(max_length=40)] = "",
    until: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """Start a run over the ticked sources (none ticked: all) and period; a refused request re-renders the form (422)."""
    names = [name.strip() for name in source or [] if name.strip()]
    form = {"sources": names, "since": since, "until": until}
    try:
        run_id = service.enqueue_run(
            db, sources=names, since=_parse_day(since, "since"), until=_parse_day(until, "until")
        )
    except service.RunRequestError as exc:
        db.rollback()
        return _runs_page(request, db, session, error=str(exc), offset=0, status_code=422, form=form)
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
    offset: OffsetQuery = 0,
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


API_PREFIXES = ("/api/", "/api", "/health", "/openapi.json")  # answered in JSON, never with a page
ERROR_TITLES = {
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed",
    413: "Too large",
    422: "Not valid",
    429: "Too many attempts",
    500: "Something went wrong",
}


def is_browser_route(path: str) -> bool:
    """Whether `path` is a dashboard page (HTML errors) rather than the API or a JSON endpoint of a page."""
    return not (path == "/api" or path.startswith(API_PREFIXES) or path.endswith(".json"))


def error_response(request: Request, status_code: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    """An error as a page for dashboard routes, as `{"detail": ...}` for the API."""
    if not is_browser_route(request.url.path):
        return JSONResponse({"detail": detail}, status_code=status_code, headers=headers)
    return TEMPLATES.TemplateResponse(
        request,
        "error.html",
        {
            "status": status_code,
            "title": ERROR_TITLES.get(status_code, "Error"),
            "detail": detail,
            "signed_in": False,
            "csrf": "",
        },
        status_code=status_code,
        headers=headers,
    )


ERROR_DETAILS = {
    413: "The request body is larger than this server accepts (THREADLINE_API_MAX_BODY_BYTES).",
    500: "The server could not answer this request; it has been logged.",
}


def error_page(scope: Any, status_code: int) -> Response:
    """The answer of the middleware (413 body too large, 500 unhandled exception): nothing about the request itself."""
    return error_response(Request(scope), status_code, ERROR_DETAILS.get(status_code, "error"))


def install(app: FastAPI) -> None:
    """Mount the pages; `LoginRequired` becomes a redirect to sign in, HTTP errors on pages become pages."""

    @app.exception_handler(LoginRequired)
    def _login(request: Request, exc: LoginRequired) -> RedirectResponse:
        return see_other(exc.next_path)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if not is_browser_route(request.url.path):
            return await http_exception_handler(request, exc)
        return error_response(request, exc.status_code, str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        # FastAPI's default echoes each refused value back ("input"); a refused value can be a lone
        # surrogate (unencodable: the answer itself would fail with a 500) or customer text.
        errors = [{k: v for k, v in e.items() if k in ("type", "loc", "msg")} for e in exc.errors()]
        if not is_browser_route(request.url.path):
            return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)
        message = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors)[:500]
        return error_response(request, 422, message)

    app.include_router(router)
