"""`threadline gaps`, `GET /api/gaps`, the report's documentation section and a theme's related articles."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from coverage_fixture import PLANTED_DOMAIN, write_conversations, write_help_center
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session
from support import threadline_command

from threadline.config import Settings
from threadline.connectors.files.importer import import_file
from threadline.connectors.knowledge.sources import add_knowledge_source, sync_knowledge
from threadline.db.engine import session_scope
from threadline.engine.runs import create_run, execute_run
from threadline.server.tokens import create_token


@pytest.fixture()
def run_id(db_engine, embedder, tmp_path: Path) -> int:
    import_file(db_engine, write_conversations(tmp_path / "conversations.jsonl"), source_name="tiny")
    root = write_help_center(tmp_path / "help")
    with Session(db_engine) as session, session.begin():
        add_knowledge_source(
            session, "folder", "help", {"path": str(root), "base_url": "https://help.tallyboard.test/"}
        )
    sync_knowledge(db_engine, "help", embedder=embedder)
    with session_scope(db_engine) as session:
        created = create_run(session).id
    assert execute_run(db_engine, created, embedder).status == "succeeded"
    return created


def _threadline(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([*threadline_command(), *args], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return result


def _check_documentation(found: dict) -> None:
    (gap,) = found["gaps"]
    assert gap["conversations"] == 6 and gap["customers"] == 6 and gap["rank"] == 1
    assert all("Slack" in e["excerpt"] and e["external_id"].startswith("slack-") for e in gap["examples"])
    (article,) = found["confusing_articles"]
    assert article["title"] == "Import projects from Trello" and article["stuck_share"] == 1.0
    assert article["kind"] == "still_stuck" and article["reason"].startswith("still stuck in 6 of 6 conversations")
    assert article["url"] == "https://help.tallyboard.test/import-from-trello.md"
    assert all("still can't import" in e["excerpt"] for e in article["examples"])
    text = json.dumps(found)
    assert PLANTED_DOMAIN not in text and "7946" not in text  # personal data masked
    assert "[email]" in text


def test_gaps_command_prints_gaps_and_confusing_articles_masked(run_id, cli_env):
    _check_documentation(json.loads(_threadline(cli_env, "gaps", "--json").stdout))
    table = _threadline({**cli_env, "COLUMNS": "300"}, "gaps", "--run", str(run_id))
    assert "Import projects from Trello" in table.stdout and "still stuck in 6 of 6" in table.stdout
    assert PLANTED_DOMAIN not in table.stdout + table.stderr and "Traceback" not in table.stderr


def test_report_has_a_documentation_section(run_id, cli_env, tmp_path):
    report = tmp_path / "report.md"
    _threadline(cli_env, "report", "--format", "md", "-o", str(report))
    text = report.read_text()
    section = text[text.index("## Documentation") :]
    assert "### Gaps" in section and "6 conversations from 6 customers" in section
    assert "[Import projects from Trello](<https://help.tallyboard.test/import-from-trello.md>)" in section
    assert "still stuck in 6 of 6 conversations" in section and PLANTED_DOMAIN not in text


def test_api_gaps_and_theme_articles(run_id, db_engine, db_url, tmp_path):
    from threadline.app import create_app

    with session_scope(db_engine) as session:
        token = create_token(session, "tests")
    app = create_app(Settings(home=tmp_path / "home", database_url=db_url), engine=db_engine)
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        response = client.get("/api/gaps", params={"run_id": run_id})
        assert response.status_code == 200, response.text
        found = response.json()
        assert found["run_id"] == run_id
        _check_documentation(found)
        assert client.get("/api/gaps", params={"run_id": 999_999}).status_code == 404
        covered = client.get("/api/themes", params={"run_id": run_id}).json()["items"]
        themes = [t["id"] for group in covered for t in group["themes"]]
        titles = set()
        for theme_id in themes:
            detail = client.get(f"/api/themes/{theme_id}", params={"run_id": run_id}).json()
            titles |= {a["title"] for a in detail["articles"]}
            if theme_id == found["gaps"][0]["theme_id"]:
                assert detail["articles"] == []
        assert titles == {"Set up recurring invoices", "Import projects from Trello"}


def test_documentation_page_and_theme_page_articles(run_id, db_engine, db_url, tmp_path):
    from threadline.app import create_app

    with session_scope(db_engine) as session:
        token = create_token(session, "tests")
    app = create_app(Settings(home=tmp_path / "home", database_url=db_url), engine=db_engine)
    with TestClient(app, follow_redirects=False) as client:
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
        assert client.post("/login", data={"token": token, "csrf_token": csrf}).status_code == 303
        page = client.get("/documentation", params={"run_id": run_id})
        assert page.status_code == 200
        assert '<a href="https://help.tallyboard.test/import-from-trello.md" rel="noopener noreferrer">' in page.text
        assert (
            "still stuck in 6 of 6 conversations" in page.text
            and "[email]" in page.text
            and PLANTED_DOMAIN not in page.text
        )
        gap_theme = re.search(r'<section class="card" id="gaps">.*?href="/themes/(\d+)', page.text, re.S).group(1)
        gap_page = client.get(f"/themes/{gap_theme}", params={"run_id": run_id}).text
        assert 'id="related-articles"' in gap_page and "No article answers this theme" in gap_page
        found = client.get("/api/gaps", headers={"Authorization": f"Bearer {token}"}).json()
        trello = [t for t in _answered_themes(client, token, run_id) if "Import projects from Trello" in t[1]]
        assert trello and found["confusing_articles"]
        theme_page = client.get(f"/themes/{trello[0][0]}", params={"run_id": run_id}).text
        assert 'href="https://help.tallyboard.test/import-from-trello.md"' in theme_page
        # The theme's story shows the same related articles.
        stories = client.get(
            "/api/stories",
            params={"run_id": run_id, "theme_id": trello[0][0]},
            headers={"Authorization": f"Bearer {token}"},
        ).json()["items"]
        assert stories
        story_page = client.get(f"/stories/{stories[0]['id']}", params={"run_id": run_id}).text
        assert 'id="related-articles"' in story_page
        assert 'href="https://help.tallyboard.test/import-from-trello.md"' in story_page
        story_out = client.get(f"/api/stories/{stories[0]['id']}", headers={"Authorization": f"Bearer {token}"}).json()
        assert any(a["url"] == "https://help.tallyboard.test/import-from-trello.md" for a in story_out["articles"])


def _answered_themes(client: TestClient, token: str, run_id: int) -> list[tuple[int, set[str]]]:
    headers = {"Authorization": f"Bearer {token}"}
    groups = client.get("/api/themes", params={"run_id": run_id}, headers=headers).json()["items"]
    out = []
    for theme in (t for g in groups for t in g["themes"]):
        detail = client.get(f"/api/themes/{theme['id']}", params={"run_id": run_id}, headers=headers).json()
        out.append((theme["id"], {a["title"] for a in detail["articles"]}))
    return out
