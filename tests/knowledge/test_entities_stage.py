"""Entities per conversation (cached in `analyses`) and per theme (the run's snapshot), and where they are shown."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from coverage_fixture import RECURRING, SLACK, _conversation, write_help_center
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from support import threadline_command

from threadline.analysis.theme_entities import ENTITIES_ANALYSIS
from threadline.config import Settings, get_settings
from threadline.connectors.files.importer import import_file
from threadline.connectors.knowledge.sources import add_knowledge_source, sync_knowledge
from threadline.db.engine import session_scope
from threadline.db.models import Analysis, Conversation, Run, RunTheme, ThemeMember
from threadline.engine.runs import create_run, execute_run
from threadline.read.themes import theme_detail
from threadline.server.tokens import create_token

IOS = [
    "The iPhone app crashes when I open an invoice, we are on the Business plan.",
    "On my iPad the app closes as soon as I open any invoice. We pay for the Business plan.",
    "Invoices crash the iOS app every time I tap one, our team upgraded to Business last month.",
    "Opening an invoice in the iPhone app makes it crash, please help.",
    "Every time I open an invoice on iOS the app quits.",
    "The app on my iPhone crashes when I view an invoice, Business plan customer here.",
]


def _write(path: Path) -> Path:
    rows = [_conversation(i, "recurring", q, [("agent", "Let me check.")]) for i, q in enumerate(RECURRING)]
    rows += [_conversation(10 + i, "slack", q, [("agent", "Let me check.")]) for i, q in enumerate(SLACK)]
    rows += [_conversation(30 + i, "ios", q, [("agent", "Sorry about that.")]) for i, q in enumerate(IOS)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _run(engine, embedder) -> Run:
    with session_scope(engine) as session:
        run_id = create_run(session).id
    run = execute_run(engine, run_id, embedder)
    assert run.status == "succeeded", run.counters
    return run


@pytest.fixture()
def knowledge(db_engine, embedder, tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("THREADLINE_INSIGHT_PLAN_WEIGHTS", '{"Business": 2, "Team": 1}')
    get_settings.cache_clear()
    assert import_file(db_engine, _write(tmp_path / "conversations.jsonl"), source_name="tiny").ok
    root = write_help_center(tmp_path / "help")
    with Session(db_engine) as session, session.begin():
        add_knowledge_source(
            session, "folder", "help", {"path": str(root), "base_url": "https://help.tallyboard.test/"}
        )
    sync_knowledge(db_engine, "help", embedder=embedder)
    return root


def _theme_of(session: Session, run_id: int, prefix: str) -> RunTheme:
    theme_id = session.execute(
        select(ThemeMember.theme_id)
        .join(Conversation, Conversation.id == ThemeMember.conversation_id)
        .where(ThemeMember.run_id == run_id, Conversation.external_id.like(f"{prefix}-%"))
        .group_by(ThemeMember.theme_id)
        .order_by(func.count().desc())
        .limit(1)
    ).scalar_one()
    return session.get(RunTheme, (run_id, theme_id))


def test_theme_entities_are_in_the_snapshot_and_recomputed_when_the_knowledge_base_changes(
    db_engine, embedder, knowledge
):
    run = _run(db_engine, embedder)
    assert run.counters["coverage"]["entities_computed"] == 18, run.counters
    with Session(db_engine) as session:
        ios = _theme_of(session, run.id, "ios")
        shares = {(e["type"], e["value"]): e["share"] for e in ios.entities}
        assert shares[("platform", "iOS")] == 1.0 and shares[("plan", "Business")] >= 0.5, shares
        assert theme_detail(session, ios.theme_id, run.id)["mostly"] == "mostly iOS, plan Business"
        slack = {(e["type"], e["value"]) for e in _theme_of(session, run.id, "slack").entities}
        assert ("integration", "Slack") in slack
        recurring = {(e["type"], e["value"]) for e in _theme_of(session, run.id, "recurring").entities}
        assert ("feature", "Make an invoice recurring") in recurring  # a heading of the knowledge base
        assert session.execute(select(func.count()).where(Analysis.stage == ENTITIES_ANALYSIS)).scalar_one() == 18

    again = _run(db_engine, embedder)
    assert again.counters["coverage"]["entities_reused"] == 18 and again.counters["coverage"]["entities_computed"] == 0

    (knowledge / "slack-alerts.md").write_text(
        "# Slack notifications\n\nConnect Slack in Settings.\n\n## Task notifications\nPick the channel.\n"
    )
    sync_knowledge(db_engine, "help", embedder=embedder)
    changed = _run(db_engine, embedder)
    assert changed.counters["coverage"]["entities_computed"] == 18, changed.counters
    with Session(db_engine) as session:
        slack = {(e["type"], e["value"]) for e in _theme_of(session, changed.id, "slack").entities}
        assert ("feature", "Slack notifications") in slack or ("feature", "Task notifications") in slack, slack


def test_themes_json_api_detail_conversation_filter_and_theme_page(
    db_engine, embedder, knowledge, db_url, cli_env, tmp_path
):
    run = _run(db_engine, embedder)
    env = {**cli_env, "THREADLINE_INSIGHT_PLAN_WEIGHTS": '{"Business": 2, "Team": 1}'}
    out = subprocess.run(
        [*threadline_command(), "themes", "--json"], env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr
    themes = [t for group in json.loads(out.stdout) for t in group["themes"]]
    assert any({"type": "platform", "value": "iOS", "share": 1.0} in t["entities"] for t in themes), themes

    from threadline.app import create_app

    with Session(db_engine) as session:
        ios_theme = _theme_of(session, run.id, "ios").theme_id
    with session_scope(db_engine) as session:
        token = create_token(session, "tests")
    app = create_app(Settings(home=tmp_path / "home", database_url=db_url), engine=db_engine)
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        detail = client.get(f"/api/themes/{ios_theme}", params={"run_id": run.id}).json()
        assert {"type": "platform", "value": "iOS", "share": 1.0} in detail["entities"], detail
        assert detail["mostly"] == "mostly iOS, plan Business"
        for entity in ("ios", "iOS", "platform:ios"):
            found = client.get("/api/conversations", params={"entity": entity, "limit": 100}).json()["items"]
            assert sorted(c["external_id"] for c in found) == [f"ios-{30 + i}" for i in range(6)], entity
        business = client.get("/api/conversations", params={"entity": "plan:business", "limit": 100}).json()
        assert {c["external_id"] for c in business["items"]} == {"ios-30", "ios-31", "ios-32", "ios-35"}
        assert client.get("/api/conversations", params={"entity": "android"}).json()["items"] == []
    with TestClient(app, follow_redirects=False) as client:
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
        assert client.post("/login", data={"token": token, "csrf_token": csrf}).status_code == 303
        page = client.get(f"/themes/{ios_theme}", params={"run_id": run.id})
        assert page.status_code == 200 and "mostly iOS, plan Business" in re.sub(r"<[^>]+>", "", page.text)
