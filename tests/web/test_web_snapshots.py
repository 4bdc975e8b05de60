"""Snapshots in a real browser: pick a scope and an earlier run, see that run's stories; "Since last run" shows a new theme.

Runs are executed in-process before the browser opens (the dashboard flow that starts runs
is covered by test_web_dashboard): two runs of the scope `support` (the sample's first half,
then its second half with a planted theme and a stopped one) and a later run of another
scope, so the default view is the other scope and the picker must be used.
"""

from __future__ import annotations

import json
import re
from datetime import datetime

import pytest
from snapshot_helpers import PLANTED_PREFIX, planted_files, run_now
from sqlalchemy import select
from support import SCREENSHOTS

from threadline.connectors.files.importer import import_file
from threadline.db.engine import session_scope
from threadline.db.models import Conversation, ThemeMember
from threadline.read.changes import changes
from threadline.read.stories import list_stories
from threadline.read.views import run_ref

LAPTOP = {"width": 1366, "height": 900}  # px: a common laptop viewport
PAGE_TIMEOUT_MS = 30_000  # ms for a page to load after a picker change: server-rendered, well under a second


@pytest.fixture()
def two_scopes(sample_engine, embedder, tmp_path):
    first_half, second_half, middle = planted_files(tmp_path)
    import_file(sample_engine, first_half, source_name="support")
    import_file(sample_engine, second_half, source_name="support")
    split = datetime.fromisoformat(middle)
    first = run_now(sample_engine, embedder, source="support", until=split)
    second = run_now(sample_engine, embedder, source="support", since=split)
    other = tmp_path / "other.jsonl"
    other.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"o{i}",
                    "created_at": "2026-10-01T10:00:00+00:00",
                    "messages": [{"author": "customer", "text": f"My card number {i} was declined at the shop."}],
                }
            )
            + "\n"
            for i in range(6)
        )
    )
    import_file(sample_engine, other, source_name="other")
    latest = run_now(sample_engine, embedder, source="other")
    with session_scope(sample_engine) as session:
        found = changes(session, run_ref(session, second))
        planted = {
            theme_id
            for theme_id, external_id in session.execute(
                select(ThemeMember.theme_id, Conversation.external_id)
                .join(Conversation, Conversation.id == ThemeMember.conversation_id)
                .where(ThemeMember.run_id == second)
            )
            if external_id.startswith(PLANTED_PREFIX)
        }
        new_planted = [t for t in found["new_themes"] if t["id"] in planted]
        first_titles = [s["title"] for s in list_stories(session, run_id=first, limit=100, offset=0)]
    assert new_planted and first_titles
    return {
        "first": first,
        "second": second,
        "latest": latest,
        "planted_name": new_planted[0]["name"],
        "titles": first_titles,
    }


@pytest.mark.slow
def test_pick_scope_and_earlier_run_and_see_the_planted_theme_since_last_run(
    two_scopes, live_server, web_token, browser
):  # runs first: Playwright's sync API keeps an event loop on this thread, and a run starts one of its own
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport=LAPTOP)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{live_server}/login?next=/stories")
    page.fill("#token", web_token)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/stories$"))
    # The default view is the latest scope (`other`), whose single run has no story.
    assert f"run {two_scopes['latest']}" in page.locator("#shown-run").inner_text()

    # Pick the scope `support`: the page shows its latest run at once (the picker submits itself).
    support = page.locator("#pick-scope option", has_text="support").get_attribute("value")
    with page.expect_navigation(timeout=PAGE_TIMEOUT_MS):
        page.select_option("#pick-scope", support)
    assert f"run {two_scopes['second']}" in page.locator("#shown-run").inner_text()
    # Pick the earlier run: its stories, as it wrote them.
    with page.expect_navigation(timeout=PAGE_TIMEOUT_MS):
        page.select_option("#pick-run", str(two_scopes["first"]))
    assert f"run_id={two_scopes['first']}" in page.url
    titles = page.locator("#stories-table tbody td:nth-child(2) a").all_inner_texts()
    assert titles == two_scopes["titles"]
    page.screenshot(path=str(SCREENSHOTS / "09-stories-of-an-earlier-run.png"), full_page=True)

    # The overview of the scope's latest run: "Since last run" lists the planted theme as new.
    page.goto(f"{live_server}/?scope={support}")
    panel = page.locator("#since-last-run")
    assert f"run {two_scopes['first']}" in panel.inner_text()
    assert two_scopes["planted_name"] in panel.locator(".change-new_themes").inner_text()
    assert "none" not in panel.locator(".change-gone_themes").inner_text()  # the stopped theme is gone
    page.screenshot(path=str(SCREENSHOTS / "10-since-last-run.png"), full_page=True)
    # Runs list: each run's scope and period.
    page.goto(f"{live_server}/runs")
    rows = page.locator("table tbody tr").all_inner_texts()
    assert any("support" in row and " to " in row for row in rows) and any("other" in row for row in rows)
    context.close()
    assert not errors, errors
