"""Nothing planted shows: personal data in customer messages never reaches the dashboard, the API or the report.

Ten conversations about an ATM keeping a card (a topic the sample does not have, so they
form a theme with a story) carry e-mails, phones in two national formats, a card number,
an IBAN and PINs inside the very sentences that describe the problem, so they are quoted
as evidence. After a run, the story page, the theme page and a planted conversation's page
(in Chromium), the API's story, theme, conversation and report responses, and the Markdown
and CSV report must show the masks and none of the planted values; the database still holds
them verbatim (masking happens when text is shown).
"""

from __future__ import annotations

import json
import re

import httpx
import pytest
from snapshot_helpers import run_now
from sqlalchemy import select

from threadline.connectors.files.importer import import_file
from threadline.db.engine import session_scope
from threadline.db.models import Conversation, Message
from threadline.read.stories import list_stories
from threadline.stories.export import to_csv, to_markdown

PLANTED = (
    "jane.doe@example.com",
    "m.rossi@example.org",
    "+44 20 7946 0958",
    "(415) 555-0132",
    "4111 1111 1111 1111",
    "GB82 WEST 1234 5698 7654 32",
    "4821",
    "7350",
    "2967",
)
SENTENCES = (
    "The ATM swallowed my card again and now my PIN 4821 does not work, please call me on +44 20 7946 0958.",
    "My card 4111 1111 1111 1111 was swallowed by the ATM yesterday, reach me at jane.doe@example.com.",
    "The cash machine kept my debit card and rejected my pin 7350, my number is (415) 555-0132.",
    "The ATM ate my card this morning, refund the cash to GB82 WEST 1234 5698 7654 32 please.",
    "The ATM retained my card after the PIN 2967 was rejected, email me at m.rossi@example.org.",
)
PLANTED_COUNT = 10  # conversations: twice the smallest theme with a story
PAGE_TIMEOUT_MS = 30_000  # ms for a server-rendered page


def _absent(text: str, where: str) -> None:
    # A planted PIN is a token of its own: "4821" inside a timestamp's microseconds or a hash is not it.
    found = [value for value in PLANTED if re.search(rf"(?<![0-9A-Za-z]){re.escape(value)}(?![0-9A-Za-z])", text)]
    assert not found, f"{where} shows planted personal data: {found}"


@pytest.fixture()
def planted_run(sample_engine, embedder, tmp_path):
    path = tmp_path / "planted.jsonl"
    path.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"pii-{i}",
                    "created_at": f"2026-10-{10 + i:02d}T10:00:00+00:00",
                    "messages": [
                        {"author": "customer", "text": SENTENCES[i % len(SENTENCES)]},
                        {"author": "agent", "text": "Sorry to hear that, we are looking into it."},
                    ],
                }
            )
            + "\n"
            for i in range(PLANTED_COUNT)
        ),
        encoding="utf-8",
    )
    import_file(sample_engine, path, source_name="demo")
    run_id = run_now(sample_engine, embedder, source="demo")
    with session_scope(sample_engine) as session:
        stories = list_stories(session, run_id=run_id, limit=1000, offset=0)
        planted_ids = set(
            session.execute(select(Conversation.id).where(Conversation.external_id.like("pii-%"))).scalars()
        )
        stored = " ".join(
            session.execute(select(Message.text).where(Message.conversation_id.in_(planted_ids))).scalars()
        )
    assert all(value in stored for value in PLANTED)  # stored verbatim: masking is for what is shown
    story = next(s for s in stories if any(e["conversation_id"] in planted_ids for e in s["evidence"]))
    return {"run": run_id, "story": story, "stories": stories, "conversation": min(planted_ids)}


@pytest.mark.slow
def test_nothing_planted_appears_in_dashboard_api_or_report(planted_run, live_server, web_token, browser):
    story = planted_run["story"]
    assert any(marker in e["quote"] for e in story["evidence"] for marker in ("[pin]", "[phone]", "[email]", "[card]"))
    # Report (Markdown and CSV), from the read model as `threadline report` writes it.
    _absent(to_markdown(planted_run["stories"]), "the Markdown report")
    _absent(to_csv(planted_run["stories"]), "the CSV report")
    # API.
    headers = {"Authorization": f"Bearer {web_token}"}
    with httpx.Client(base_url=f"{live_server}/api", headers=headers, timeout=PAGE_TIMEOUT_MS / 1000) as api:
        for path in (
            f"/stories/{story['id']}",
            f"/stories/{story['id']}/export.md",
            f"/stories?run_id={planted_run['run']}&limit=100",
            f"/themes/{story['theme_id']}",
            f"/themes/{story['theme_id']}/conversations",
            f"/conversations/{planted_run['conversation']}",
            "/conversations?limit=100",
            f"/conversations?unassigned=1&run_id={planted_run['run']}&limit=100",
        ):
            response = api.get(path)
            assert response.status_code == 200, (path, response.status_code)
            _absent(response.text, f"GET /api{path}")
    # Dashboard, in Chromium: story page (quotes and highlighted conversations), theme page, conversation page.
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{live_server}/login?next=/stories")
    page.fill("#token", web_token)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/stories$"), timeout=PAGE_TIMEOUT_MS)
    for path in (
        f"/stories/{story['id']}",
        f"/themes/{story['theme_id']}",
        f"/conversations/{planted_run['conversation']}",
        "/stories",
        "/themes",
    ):
        page.goto(f"{live_server}{path}", timeout=PAGE_TIMEOUT_MS)
        _absent(page.content(), f"the dashboard's {path}")
        _absent(page.inner_text("body"), f"the dashboard's {path} (rendered text)")
    page.goto(f"{live_server}/stories/{story['id']}", timeout=PAGE_TIMEOUT_MS)
    assert "[pin]" in page.inner_text("body") or "[phone]" in page.inner_text("body")
    assert page.locator("#story-priority table tbody tr").count() >= 1  # the factors behind rank and severity
    # Unassigned conversations are one click away from the themes page.
    page.goto(f"{live_server}/themes", timeout=PAGE_TIMEOUT_MS)
    link = page.locator("#unassigned a")
    assert "conversations in no theme" in link.inner_text()
    with page.expect_navigation(timeout=PAGE_TIMEOUT_MS):
        link.click()
    assert f"unassigned=1&run_id={planted_run['run']}" in page.url
    assert f"in no theme of run {planted_run['run']}" in page.inner_text("h1")
    _absent(page.content(), "the unassigned conversations page")
    context.close()
