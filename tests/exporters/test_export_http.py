"""Exporting from the API (`POST /api/stories/{id}/export`) and the story page ("Send to ..."), and the link shown.

GitHub stand-in only: the exporters themselves are covered per tracker in test_export.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from cases import CASES
from fastapi.testclient import TestClient
from seed import seed_stories
from sqlalchemy import select
from sqlalchemy.orm import Session

from threadline.config import Settings
from threadline.db.engine import session_scope
from threadline.db.models import AuditEvent
from threadline.exporters.trackers import add_tracker
from threadline.server.tokens import create_token

GITHUB = CASES["github"]


@pytest.fixture
def setup(
    db_engine, db_url, tmp_path, github_server, monkeypatch
) -> Iterator[tuple[TestClient, str, list[int], object]]:
    for name, value in GITHUB.env().items():
        monkeypatch.setenv(name, value)
    server = github_server()
    with Session(db_engine) as session, session.begin():
        add_tracker(session, "github", "gh", GITHUB.values(server.url))
    story_ids = seed_stories(db_engine, 2)
    with session_scope(db_engine) as session:
        token = create_token(session, "product-lead")
    from threadline.app import create_app

    app = create_app(Settings(home=tmp_path / "home", database_url=db_url), engine=db_engine)
    with TestClient(app, follow_redirects=False) as client:
        yield client, token, story_ids, server


def test_api_export_creates_once_and_the_link_is_on_the_story(setup, db_engine) -> None:
    client, token, story_ids, server = setup
    auth = {"Authorization": f"Bearer {token}"}
    first = client.post(f"/api/stories/{story_ids[0]}/export", json={"tracker": "gh"}, headers=auth)
    assert first.status_code == 200, first.text
    assert first.json()["created"] == 1
    again = client.post(f"/api/stories/{story_ids[0]}/export", json={"tracker": "gh"}, headers=auth)
    assert again.json()["created"] == 0 and again.json()["updated"] == 1
    assert len(server.world.issues) == 1
    story = client.get(f"/api/stories/{story_ids[0]}", headers=auth).json()
    assert story["status"] == "exported"
    assert story["trackers"][0]["tracker"] == "gh" and story["trackers"][0]["key"] == "1"
    listed = client.get("/api/stories", headers=auth).json()["items"]
    assert [s["trackers"] for s in listed if s["id"] == story_ids[1]] == [[]]
    with Session(db_engine) as session:
        actors = session.execute(select(AuditEvent.actor).where(AuditEvent.action == "story.export")).scalars().all()
    assert actors == ["product-lead", "product-lead"]  # who exported

    unknown = client.post(f"/api/stories/{story_ids[0]}/export", json={"tracker": "nope"}, headers=auth)
    assert unknown.status_code == 404
    missing = client.post("/api/stories/999999/export", json={"tracker": "gh"}, headers=auth)
    assert missing.status_code == 404


def test_send_to_button_exports_and_shows_the_link(setup) -> None:
    client, token, story_ids, server = setup
    form = client.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    assert client.post("/login", data={"token": token, "csrf_token": csrf}).status_code == 303
    page = client.get(f"/stories/{story_ids[0]}")
    assert "Send to gh" in page.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    refused = client.post(f"/stories/{story_ids[0]}/send", data={"tracker": "gh"})
    assert refused.status_code in (403, 422) and not server.world.issues  # no CSRF token, nothing sent
    sent = client.post(f"/stories/{story_ids[0]}/send", data={"tracker": "gh", "csrf_token": csrf})
    assert sent.status_code == 303
    shown = client.get(sent.headers["location"])
    assert "Sent to gh." in shown.text and 'id="story-trackers"' in shown.text
    assert f"{server.url}" in shown.text or "gh 1" in shown.text
    assert len(server.world.issues) == 1
