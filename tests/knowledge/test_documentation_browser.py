"""In a real browser (Debian's Chromium): the Documentation page shows a gap and a confusing article with evidence.

The coverage fixture's tiny help center and conversations, with hostile text planted: the Trello
article's title and the customers' messages carry a ``<script>`` that would set
``document.title`` and a global, and the Slack questions and the stuck replies carry an e-mail
address and a phone number. After one run, the signed-in page must show the gap (Slack
notifications) and the confusing article (Trello) with their example conversations, the personal
data masked, and the scripts as text that never ran.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import chromium_browser, served
from coverage_fixture import (
    ARTICLES,
    BASE_URL,
    PLANTED_DOMAIN,
    RECURRING,
    SLACK,
    STILL_STUCK,
    TRELLO,
    _conversation,
)
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from threadline.config import Settings
from threadline.connectors.files.importer import import_file
from threadline.connectors.knowledge.sources import add_knowledge_source, sync_knowledge
from threadline.db.engine import session_scope
from threadline.engine.runs import create_run, execute_run
from threadline.server.tokens import create_token

PAGE_TIMEOUT_MS = 30_000  # ms for a server-rendered page

SCRIPT = "<script>document.title='pwned';window.pwned=1</script>"  # would run if any text reached the page as HTML
TRELLO_TITLE = f"Import projects from Trello {SCRIPT}"
TRELLO_URL = f"{BASE_URL}import-from-trello.md"
PHONE = "7946 0958"  # the tail of STILL_STUCK's planted phone number


def _write_help_center(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, body in ARTICLES.items():
        if name == "import-from-trello.md":
            body = body.replace("# Import projects from Trello", f"# {TRELLO_TITLE}", 1)
        (root / name).write_text(body)
    return root


def _write_conversations(path: Path) -> Path:
    rows = []
    for i, question in enumerate(RECURRING):
        link = f"Here's the guide: {BASE_URL}recurring-invoices"
        rows.append(_conversation(i, "recurring", question, [("agent", link), ("customer", "Found it, thanks!")]))
    for i, question in enumerate(SLACK):
        asked = f"{question} Reply to ops{i}@{PLANTED_DOMAIN} please {SCRIPT}"
        rows.append(_conversation(10 + i, "slack", asked, [("agent", "Let me check with the team.")]))
    for i, question in enumerate(TRELLO):
        link = f"Have a look at {TRELLO_URL}, it explains every step."
        rows.append(
            _conversation(20 + i, "trello", question, [("agent", link), ("customer", f"{STILL_STUCK} {SCRIPT}")])
        )
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture
def documented_run(db_engine: Engine, embedder, tmp_path: Path) -> int:
    """One succeeded run over the planted conversations, with the planted help center synced before it."""
    assert import_file(db_engine, _write_conversations(tmp_path / "conversations.jsonl"), source_name="tiny").ok
    root = _write_help_center(tmp_path / "help")
    with Session(db_engine) as session, session.begin():
        add_knowledge_source(session, "folder", "help", {"path": str(root), "base_url": BASE_URL})
    sync_knowledge(db_engine, "help", embedder=embedder)
    with session_scope(db_engine) as session:
        run_id = create_run(session).id
    run = execute_run(db_engine, run_id, embedder)
    assert run.status == "succeeded", run.counters
    assert run.counters["coverage"]["gaps"] >= 1 and run.counters["coverage"]["confusing_articles"] >= 1, run.counters
    return run.id


@pytest.fixture
def live_app(db_engine: Engine, db_url: str, tmp_path: Path) -> Iterator[str]:
    from threadline.app import create_app

    with served(create_app(Settings(home=tmp_path / "home", database_url=db_url), engine=db_engine)) as url:
        yield url


@pytest.fixture
def chromium():
    with chromium_browser() as instance:
        yield instance


@pytest.mark.slow
def test_documentation_page_shows_gap_and_confusing_article_masked_and_inert(
    db_engine, documented_run, live_app, chromium
) -> None:
    with session_scope(db_engine) as session:
        token = create_token(session, "browser")
    page = chromium.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    page.goto(f"{live_app}/login?next=/documentation")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/documentation$"))

    gaps = page.locator("#gaps tbody tr")
    assert gaps.count() == 1
    gap = gaps.first.inner_text()
    assert "Slack" in gap and re.search(r"\b6\s+6\s+\d+%", gap), gap
    assert gaps.first.locator("td ul li a").count() >= 1  # example conversations, linked
    confusing = page.locator("#confusing tbody tr")
    assert confusing.count() == 1
    article = confusing.first
    assert article.locator(f'a[href="{TRELLO_URL}"]').inner_text() == TRELLO_TITLE  # the script is the title's text
    assert "still stuck in 6 of 6" in article.inner_text() and "still can't import" in article.inner_text()

    body = page.inner_text("body")
    assert PLANTED_DOMAIN not in body and PHONE not in body and "[email]" in body, body
    assert PLANTED_DOMAIN not in page.content() and PHONE not in page.content()
    assert body.count(SCRIPT) >= 3, body  # the title, a gap example and a stuck reply: shown as text
    assert page.title() != "pwned" and page.evaluate("typeof window.pwned") == "undefined"
    assert page.locator("main script").count() == 0  # no planted element was created
    assert errors == [], errors
    page.close()
