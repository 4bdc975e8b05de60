"""Pages that cannot be turned against their user (issue 15, finding 4).

Customer text is hostile: a conversation `url` of `javascript:...`, bidi overrides and
zero-width characters, HTML and formula-looking text in exported stories. The dashboard must
show none of it as something that runs, answer with a strict CSP and frame protection, end a
session on the server at sign-out, and answer errors on pages with pages.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from markdown_it import MarkdownIt
from snapshot_helpers import run_now
from sqlalchemy import Engine, select, update

from threadline.config import Settings
from threadline.connectors.files.importer import import_file
from threadline.db.engine import session_scope
from threadline.db.models import Conversation, Message, ThemeMember
from threadline.read.stories import list_stories
from threadline.server.middleware import CONTENT_SECURITY_POLICY
from threadline.stories.export import to_csv, to_markdown

EVIL_URL = "javascript:fetch('/api/stories')"
RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: makes "exe.txt" read as "txt.exe"
ZWSP = "\u200b"  # ZERO WIDTH SPACE: hides a word boundary
CSP_DIRECTIVES = (
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "object-src 'none'",
)


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _sign_in(client: TestClient, token: str) -> None:
    form = client.get("/login")
    assert client.post("/login", data={"token": token, "csrf_token": _csrf(form.text)}).status_code == 303


@pytest.fixture()
def app_client(sample_engine: Engine, db_url: str, tmp_path: Path):
    from threadline.app import create_app

    app = create_app(Settings(home=tmp_path / "home", database_url=db_url), engine=sample_engine)

    @app.get("/boom-page")
    def boom_page() -> None:  # a page whose code fails: the error must not leak, and the answer is a page
        raise RuntimeError("customer-secret-in-exception")

    with TestClient(app, follow_redirects=False, raise_server_exceptions=False) as client:
        yield client


def _hostile_conversation(engine: Engine) -> int:
    """Plant a javascript: url and bidi/zero-width text on one conversation, as a connector bug or old data would."""
    with session_scope(engine) as session:
        conversation_id = session.execute(select(Conversation.id).order_by(Conversation.id).limit(1)).scalar_one()
        session.execute(update(Conversation).where(Conversation.id == conversation_id).values(url=EVIL_URL))
        message = session.execute(
            select(Message).where(Message.conversation_id == conversation_id).order_by(Message.id).limit(1)
        ).scalar_one()
        message.text = f"invoice{RLO}fdp.exe and hid{ZWSP}den"
    return conversation_id


def test_import_keeps_the_record_and_drops_a_non_http_url(db_engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "urls.jsonl"
    records = [
        {"id": "js", "url": "javascript:alert(1)", "messages": [{"author": "customer", "text": "hello"}]},
        {"id": "data", "url": "data:text/html,<script>1</script>", "messages": [{"author": "customer", "text": "x"}]},
        {"id": "web", "url": "https://support.example.com/c/1", "messages": [{"author": "customer", "text": "y"}]},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    result = import_file(db_engine, path, source_name="urls")
    with session_scope(db_engine) as session:
        urls = dict(session.execute(select(Conversation.external_id, Conversation.url)).all())
    assert urls == {"js": None, "data": None, "web": "https://support.example.com/c/1"}
    problems = [p for p in result.report.problems if p.field == "url"]
    assert len(problems) == 2 and all("http" in p.reason and not p.rejected for p in problems)


def test_javascript_url_is_not_a_link_and_bidi_is_shown_as_markers(app_client, web_token, sample_engine) -> None:
    conversation_id = _hostile_conversation(sample_engine)
    _sign_in(app_client, web_token)
    page = app_client.get(f"/conversations/{conversation_id}")
    assert page.status_code == 200
    assert "javascript:" not in page.text
    assert RLO not in page.text and ZWSP not in page.text
    assert "&lt;U+202E&gt;" in page.text and "&lt;U+200B&gt;" in page.text


def test_every_answer_carries_the_security_headers(app_client, web_token) -> None:
    _sign_in(app_client, web_token)
    answers = {
        "page": app_client.get("/"),
        "login": app_client.get("/login"),
        "api": app_client.get("/api/runs"),
        "page 404": app_client.get("/stories/999999"),
        "api 401": app_client.get("/api/runs", headers={"Authorization": "Bearer forged"}),
    }
    for name, response in answers.items():
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, name
        for directive in CSP_DIRECTIVES:
            assert directive in response.headers["content-security-policy"], (name, directive)
        assert "unsafe-inline" not in response.headers["content-security-policy"]
        assert response.headers["x-frame-options"] == "DENY", name
        assert response.headers["x-content-type-options"] == "nosniff", name
        assert response.headers["referrer-policy"] == "same-origin", name
        assert response.headers["cache-control"] == "no-store", name
    for path in ("/", "/themes", "/stories", "/conversations", "/runs", "/dead-letters"):
        html = app_client.get(path).text
        assert "style=" not in html and "<script>" not in html, path


def test_logout_ends_the_session_for_a_stolen_cookie(app_client, web_token) -> None:
    _sign_in(app_client, web_token)
    stolen = app_client.cookies.get("threadline_session")
    page = app_client.get("/")
    assert page.status_code == 200
    assert app_client.post("/logout", data={"csrf_token": _csrf(page.text)}).status_code == 303
    app_client.cookies.clear()
    app_client.cookies.set("threadline_session", stolen)  # the attacker's copy, replayed after sign-out
    replay = app_client.get("/")
    assert replay.status_code == 303 and replay.headers["location"].startswith("/login")
    assert app_client.get("/api/runs").status_code == 401


def test_pages_answer_errors_with_pages_and_the_api_with_json(app_client, web_token, caplog) -> None:
    _sign_in(app_client, web_token)
    missing = app_client.get("/stories/999999")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
    assert 'id="error-page"' in missing.text
    unknown = app_client.get("/no/such/page")
    assert unknown.status_code == 404 and unknown.headers["content-type"].startswith("text/html")
    api = app_client.get("/api/stories/999999")
    assert api.status_code == 404 and api.json()["detail"]
    with caplog.at_level("ERROR"):
        failed = app_client.get("/boom-page?q=customer-secret-in-query")
    assert failed.status_code == 500 and failed.headers["content-type"].startswith("text/html")
    assert "customer-secret" not in failed.text and "Traceback" not in failed.text
    assert failed.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "RuntimeError" in logged and "customer-secret" not in logged


STORY = {
    "id": 1,
    "rank": 1,
    "title": '=HYPERLINK("http://evil.example","click") <img src=x onerror=alert(1)>',
    "theme_id": 2,
    "theme": "Export [click](javascript:alert(1))",
    "conversations": 3,
    "customers": 2,
    "first_seen": "2026-10-01",
    "last_seen": "2026-10-02",
    "trend": {"direction": "rising"},
    "severity": "high",
    "severity_reason": "+cmd|' /C calc'!A0",
    "status": "candidate",
    "problem": f"<script>alert(1)</script> see [here](javascript:alert(2)) {RLO}",
    "user_story": "@SUM(1+1)",
    "acceptance_criteria": ["<b>bold</b>"],
    "evidence": [
        {
            "quote": "-2+3 is <i>wrong</i>",
            "conversation_external_id": "c1",
            "conversation_url": "javascript:alert(3)",
            "message_external_id": "m1",
            "message_position": 0,
        },
        {
            "quote": "fine",
            "conversation_external_id": "c2",
            "conversation_url": "https://support.example.com/c/2",
            "message_external_id": None,
            "message_position": 1,
        },
    ],
}


def test_markdown_export_escapes_html_and_drops_non_http_links() -> None:
    text = to_markdown([STORY], title="Report <b>")
    assert RLO not in text and "<U+202E>" in text.replace("\\", "")
    html = MarkdownIt("commonmark").render(text)  # what a Markdown viewer shows
    links = re.findall(r'href="([^"]*)"', html)
    assert links == ["https://support.example.com/c/2"], links
    assert "<script" not in html and "<img" not in html and "<i>" not in html
    assert "&lt;script&gt;" in html and "[here](javascript:alert(2))" in html  # shown as text, not run


def test_csv_report_neutralises_formula_cells() -> None:
    rows = list(csv.DictReader(io.StringIO(to_csv([STORY]))))
    assert rows[0]["title"].startswith("'=")
    assert rows[0]["evidence"].startswith("c1")  # a normal cell stays as it was
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@")), value
    story = dict(STORY, title="-1", problem="+1", severity="@x", status="=1")
    row = next(csv.DictReader(io.StringIO(to_csv([story]))))
    assert (row["title"], row["problem"], row["severity"], row["status"]) == ("'-1", "'+1", "'@x", "'=1")


@pytest.fixture()
def finished_run(sample_engine: Engine, embedder) -> dict[str, int]:
    """A finished run of the sample (stories, themes), then hostile data planted on a member of a story's theme."""
    run_id = run_now(sample_engine, embedder, source="demo")
    with session_scope(sample_engine) as session:
        story = list_stories(session, run_id=run_id, limit=1, offset=0)[0]
        member = session.execute(
            select(ThemeMember.conversation_id).where(
                ThemeMember.run_id == run_id, ThemeMember.theme_id == story["theme_id"]
            )
        ).scalar()
        session.execute(update(Conversation).values(url=EVIL_URL))  # every conversation, so every source link
        session.execute(
            update(Message).where(Message.conversation_id == member).values(text=Message.text + f" {RLO}gpj.exe")
        )
    return {"run": run_id, "story": story["id"], "theme": story["theme_id"], "conversation": member}


@pytest.mark.slow
def test_browser_csp_holds_and_no_javascript_link(finished_run, live_server, web_token, browser) -> None:
    # finished_run comes first: Playwright's sync API keeps an event loop on this thread, and a run starts its own.
    context = browser.new_context()
    context.add_init_script(
        "window.__csp = []; document.addEventListener('securitypolicyviolation',"
        " e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
    )
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda exc: console.append(f"pageerror: {exc}"))
    page.on("response", lambda r: console.append(f"error: {r.status} {r.url}") if r.status >= 400 else None)
    page.goto(f"{live_server}/login")
    page.fill("#token", web_token)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/$"))
    paths = {
        "overview": f"/?run_id={finished_run['run']}",
        "story": f"/stories/{finished_run['story']}?run_id={finished_run['run']}",
        "theme": f"/themes/{finished_run['theme']}?run_id={finished_run['run']}",
        "themes": f"/themes?run_id={finished_run['run']}",
        "conversation": f"/conversations/{finished_run['conversation']}",
        "runs": "/runs",
        "run": f"/runs/{finished_run['run']}",
    }
    for name, path in paths.items():
        response = page.goto(live_server + path)
        assert response is not None and response.status == 200, name
        policy = response.headers.get("content-security-policy", "")
        for directive in CSP_DIRECTIVES:
            assert directive in policy, (name, directive)
        assert response.headers.get("x-frame-options") == "DENY", name
        page.wait_for_load_state("load")
        assert page.evaluate("window.__csp") == [], (name, page.evaluate("window.__csp"))
        hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.getAttribute('href'))")
        assert not [h for h in hrefs if not h.startswith(("/", "#", "http://", "https://"))], (name, hrefs)
        assert RLO not in page.content(), name
    assert page.locator("text=source").count() == 0  # the conversation's only source link was javascript:
    context.close()
    assert not [m for m in console if m.startswith(("error", "pageerror"))], console
