"""In a real browser (Debian's Chromium): send a story to a tracker from its page and see the link.

The app is served by uvicorn on an ephemeral loopback port, the GitHub stand-in (behind its spec
validator) on another; the person signs in, opens the story, presses "Send to gh", and the page
it lands on says so and links the new issue.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import chromium_browser, served
from cases import CASES
from seed import seed_stories
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from threadline.config import Settings
from threadline.db.engine import session_scope
from threadline.exporters.trackers import add_tracker
from threadline.server.tokens import create_token

GITHUB = CASES["github"]
PAGE_TIMEOUT_MS = 60_000  # ms: one export of one story to the stand-in takes well under a second


@pytest.fixture
def live_app(db_engine: Engine, db_url: str, tmp_path: Path) -> Iterator[str]:
    from threadline.app import create_app

    with served(create_app(Settings(home=tmp_path / "home", database_url=db_url), engine=db_engine)) as url:
        yield url


@pytest.fixture
def chromium():
    with chromium_browser() as instance:
        yield instance


def test_send_a_story_to_a_tracker_from_its_page_and_see_the_link(
    db_engine, github_server, monkeypatch, live_app, chromium
) -> None:
    for name, value in GITHUB.env().items():
        monkeypatch.setenv(name, value)
    server = github_server()
    with Session(db_engine) as session, session.begin():
        add_tracker(session, "github", "gh", GITHUB.values(server.url))
    story_id = seed_stories(db_engine, 1)[0]
    with session_scope(db_engine) as session:
        token = create_token(session, "browser")

    page = chromium.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    page.goto(f"{live_app}/login")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    page.goto(f"{live_app}/stories/{story_id}")
    assert page.locator("#story-trackers").count() == 0  # not in any tracker yet

    page.get_by_role("button", name="Send to gh").click()
    page.wait_for_selector("#story-trackers")
    assert "Sent to gh." in page.get_by_role("status").inner_text()
    link = page.locator("#story-trackers a")
    assert link.inner_text().strip() == "gh 1"
    assert link.get_attribute("href") == f"{server.url}/acme/widgets/issues/1"
    assert len(server.world.issues) == 1
    page.close()
    assert not errors, errors
