"""The dashboard in a real browser: sign in, start a run on the sample, watch it finish, accept a story.

Screenshots land in tests/web/screenshots/ (gitignored) for a person to look at.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select
from support import SCREENSHOTS

from threadline.db.engine import session_scope
from threadline.db.models import RunStory, Story

RUN_FINISH_TIMEOUT_MS = 480_000  # ms: the sample's run takes well under a minute alone; CI machines are shared
LAPTOP = {"width": 1366, "height": 900}  # px: a common laptop viewport
PHONE = {"width": 390, "height": 844}  # px: a common phone viewport


@pytest.mark.slow
def test_sign_in_run_and_accept_a_story(browser, live_server, web_token, worker, sample_engine):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport=LAPTOP)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    # Unauthenticated: every page sends us to the sign-in form; a wrong token is refused.
    page.goto(f"{live_server}/runs")
    assert "/login" in page.url
    page.fill("#token", "tl_not-a-token")
    page.click("button[type=submit]")
    assert page.get_by_role("alert").is_visible()
    page.fill("#token", web_token)
    page.screenshot(path=str(SCREENSHOTS / "01-sign-in.png"))
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/runs$"))
    cookie = next(c for c in context.cookies() if c["name"] == "threadline_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and web_token not in cookie["value"]
    assert page.evaluate("document.cookie") == ""  # HttpOnly: invisible to scripts

    # Start a run on the sample and watch the live progress reach the end.
    page.check("input[name=source][value=demo]")  # the sources of the run's scope
    page.click("#start-run button[type=submit]")
    page.wait_for_url(re.compile(r"/runs/\d+$"))
    run_id = int(page.url.rsplit("/", 1)[1])
    page.wait_for_function(
        "document.getElementById('run-status').textContent.trim() !== 'queued'", timeout=RUN_FINISH_TIMEOUT_MS
    )
    page.screenshot(path=str(SCREENSHOTS / "02a-run-in-progress.png"), full_page=True)
    page.wait_for_function(
        "['succeeded', 'failed', 'stopped'].includes(document.getElementById('run-status').textContent.trim())",
        timeout=RUN_FINISH_TIMEOUT_MS,
    )
    page.wait_for_load_state()
    assert page.locator("#run-status").inner_text().strip() == "succeeded", page.locator("#run").inner_text()
    assert page.locator("#run-percent").inner_text().strip() == "100%"
    phases = page.locator("#run-phases tr").all_inner_texts()
    assert phases and all("done" in row for row in phases), phases
    page.screenshot(path=str(SCREENSHOTS / "02-run-finished.png"), full_page=True)

    # Overview and themes render their charts.
    page.goto(f"{live_server}/")
    assert page.locator("svg.chart rect.bar").count() > 0
    assert page.locator("svg.spark").count() > 0
    page.screenshot(path=str(SCREENSHOTS / "03-overview.png"), full_page=True)
    page.goto(f"{live_server}/themes")
    assert page.locator("svg.spark").count() >= 8
    page.screenshot(path=str(SCREENSHOTS / "04-themes.png"), full_page=True)

    # Open the top story: evidence quotes are highlighted inside their conversations.
    page.goto(f"{live_server}/stories")
    page.locator("table a[href^='/stories/']").first.click()
    page.wait_for_url(re.compile(rf"/stories/\d+\?run_id={run_id}$"))  # a story as this run wrote it
    story_id = int(page.url.rsplit("/", 1)[1].split("?")[0])
    marks = page.locator(".thread mark")
    assert marks.count() >= 3
    quotes = [q.strip("\u201c\u201d") for q in page.locator("ol.quotes li").all_inner_texts()]
    first_mark = marks.first.inner_text()
    assert any(first_mark.strip() in q for q in quotes)
    page.screenshot(path=str(SCREENSHOTS / "05-story.png"), full_page=True)

    page.get_by_role("button", name="Accept").click()
    page.wait_for_url(re.compile(rf"/stories/{story_id}\?saved=status$"))
    assert page.locator("#story-status").inner_text().strip() == "accepted"
    page.screenshot(path=str(SCREENSHOTS / "06-story-accepted.png"), full_page=True)
    with session_scope(sample_engine) as session:
        story = session.execute(select(Story).where(Story.id == story_id)).scalar_one()
        assert story.status == "accepted"
        assert session.execute(
            select(RunStory).where(RunStory.story_id == story_id, RunStory.run_id == run_id)
        ).scalar_one()

    # Full-text search over conversations.
    page.goto(f"{live_server}/conversations?q=export")
    assert page.locator("table a[href^='/conversations/']").count() > 0
    page.screenshot(path=str(SCREENSHOTS / "08-conversation-search.png"), full_page=True)

    # The same story at phone width: no horizontal scrolling of the page itself.
    phone = browser.new_context(viewport=PHONE, storage_state=context.storage_state())
    small = phone.new_page()
    small.goto(f"{live_server}/stories/{story_id}")
    assert small.evaluate("document.documentElement.scrollWidth") <= PHONE["width"] + 1
    small.screenshot(path=str(SCREENSHOTS / "07-story-phone.png"))
    phone.close()
    context.close()
    assert not errors, errors
