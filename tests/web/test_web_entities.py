"""The conversation list's entity filter on the dashboard, and the theme page's entities linking to it (TestClient).

A tiny set (six iOS invoice crashes, three of them on the Business plan, and six Slack
questions) is run once; the filter is the API's (`list_conversations(entity=...)`), so the
dashboard and `GET /api/conversations?entity=` list the same conversations.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from threadline.config import Settings, get_settings
from threadline.connectors.files.importer import import_file
from threadline.db.engine import session_scope
from threadline.db.models import Conversation, ThemeMember
from threadline.engine.runs import create_run, execute_run
from threadline.server.tokens import create_token

IOS = [
    "The iPhone app crashes when I open an invoice, we are on the Business plan.",
    "On my iPad the app closes as soon as I open any invoice. We pay for the Business plan.",
    "Invoices crash the iOS app every time I tap one, our team upgraded to Business last month.",
    "Opening an invoice in the iPhone app makes it crash, please help.",
    "Every time I open an invoice on iOS the app quits.",
    "The app on my iPhone crashes when I view an invoice, it happens on every invoice.",
]
SLACK = [
    "How do I get Slack notifications when a task is assigned to me?",
    "How can I connect Slack so our channel is notified about new tasks?",
    "Is there a way to post task updates into a Slack channel?",
    "How do I set up Slack alerts for comments on my tasks?",
    "How can I send task notifications to Slack?",
    "Where do I turn on Slack notifications for task changes?",
]
HOSTILE = '<script>document.title="pwned"</script>"><b>x</b>'  # an entity filter typed or linked by anyone


def _rows() -> list[dict]:
    rows = []
    for index, (problem, question) in enumerate([("ios", q) for q in IOS] + [("slack", q) for q in SLACK]):
        start = datetime(2026, 10, 1, tzinfo=UTC) + timedelta(hours=index)
        rows.append(
            {
                "id": f"{problem}-{index}",
                "created_at": start.isoformat(),
                "customer": {"id": f"u-{index}"},
                "messages": [
                    {"author": "customer", "text": question, "created_at": start.isoformat()},
                    {
                        "author": "agent",
                        "text": "Let me check.",
                        "created_at": (start + timedelta(minutes=1)).isoformat(),
                    },
                ],
            }
        )
    return rows


@pytest.fixture()
def entity_run(db_engine: Engine, embedder, tmp_path: Path, monkeypatch) -> int:
    """Run id of one succeeded run over the tiny set, with plans Business and Team configured."""
    monkeypatch.setenv("THREADLINE_INSIGHT_PLAN_WEIGHTS", '{"Business": 2, "Team": 1}')
    get_settings.cache_clear()  # settings are read once per process: read them again with the plans
    path = tmp_path / "conversations.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in _rows()))
    assert import_file(db_engine, path, source_name="tiny").ok
    with session_scope(db_engine) as session:
        run_id = create_run(session).id
    run = execute_run(db_engine, run_id, embedder)
    assert run.status == "succeeded", run.counters
    return run.id


@pytest.fixture()
def dashboard(db_engine: Engine, db_url: str, tmp_path: Path, entity_run: int) -> Iterator[TestClient]:
    """A signed-in dashboard session."""
    from threadline.app import create_app

    with session_scope(db_engine) as session:
        token = create_token(session, "tests")
    app = create_app(Settings(home=tmp_path / "home", database_url=db_url), engine=db_engine)
    with TestClient(app, follow_redirects=False) as client:
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
        assert client.post("/login", data={"token": token, "csrf_token": csrf}).status_code == 303
        client.headers["Authorization"] = f"Bearer {token}"  # the same client reads the JSON API too
        yield client


def _listed(page: str) -> list[int]:
    return sorted(int(i) for i in re.findall(r'href="/conversations/(\d+)"', page))


def _ids(engine: Engine, prefix: str) -> list[int]:
    with Session(engine) as session:
        return sorted(
            session.execute(select(Conversation.id).where(Conversation.external_id.like(f"{prefix}-%"))).scalars()
        )


def test_the_conversation_list_filters_by_entity_like_the_api(dashboard, db_engine):
    ios = _ids(db_engine, "ios")
    everything = dashboard.get("/conversations")
    assert everything.status_code == 200 and len(_listed(everything.text)) == len(IOS) + len(SLACK)
    assert 'name="entity"' in everything.text  # the filter is part of the page's GET form

    for entity in ("ios", "platform:ios", "Platform:iOS"):
        page = dashboard.get("/conversations", params={"entity": entity})
        assert page.status_code == 200 and _listed(page.text) == ios, entity
        assert f'name="entity" value="{entity}"' in page.text  # the form keeps what was asked
    business = dashboard.get("/conversations", params={"entity": "plan:business"}).text
    api = dashboard.get("/api/conversations", params={"entity": "plan:business", "limit": 100}).json()["items"]
    assert _listed(business) == sorted(c["id"] for c in api) and len(api) == 3, api
    combined = dashboard.get("/conversations", params={"entity": "platform:ios", "q": "iPad"}).text
    assert len(_listed(combined)) == 1
    assert _listed(dashboard.get("/conversations", params={"entity": "android"}).text) == []


def test_a_hostile_entity_filter_is_shown_as_text(dashboard):
    page = dashboard.get("/conversations", params={"entity": HOSTILE})
    assert page.status_code == 200 and _listed(page.text) == []
    assert "<script>document.title" not in page.text and "<b>x</b>" not in page.text
    assert str(escape(HOSTILE)) in page.text  # in the form field and the heading, escaped
    assert dashboard.get("/conversations", params={"entity": "a\x00b"}).status_code == 422  # never reaches SQL


def test_the_theme_pages_entities_link_to_the_filtered_list(dashboard, db_engine, entity_run):
    with Session(db_engine) as session:
        ios_theme = session.execute(
            select(ThemeMember.theme_id)
            .join(Conversation, Conversation.id == ThemeMember.conversation_id)
            .where(ThemeMember.run_id == entity_run, Conversation.external_id.like("ios-%"))
            .group_by(ThemeMember.theme_id)
            .order_by(func.count().desc())
            .limit(1)
        ).scalar_one()
    page = dashboard.get(f"/themes/{ios_theme}", params={"run_id": entity_run}).text
    mostly = re.search(r'<p id="theme-mostly">(.*?)</p>', page).group(1)
    assert re.sub(r"<[^>]+>", "", mostly) == "mostly iOS, plan Business"  # three of six: half
    assert '<a href="/conversations?entity=plan%3Abusiness">plan Business</a>' in mostly
    link = re.search(r'<a href="(/conversations\?entity=[^"]+)">iOS</a>', mostly).group(1)
    assert link == "/conversations?entity=platform%3Aios"
    assert _listed(dashboard.get(html.unescape(link)).text) == _ids(db_engine, "ios")
    listed = re.search(r'<p class="muted" id="theme-entities">(.*?)</p>', page).group(1)
    assert 'href="/conversations?entity=platform%3Aios"' in listed
