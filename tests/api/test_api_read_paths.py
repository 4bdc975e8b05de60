"""The read models: list rows agree with the detail view, filters combine, runs come in one shape,
and concurrent requests stay within the connection pool."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from threadline.config import ReadSettings
from threadline.db.models import Conversation, Run, RunConversation, ThemeMember
from threadline.read import runs as run_read
from threadline.read.conversations import list_conversations
from threadline.read.stories import list_stories, story_view
from threadline.read.themes import unassigned_count
from threadline.read.views import pick_run

MAX_LIST_LIMIT = ReadSettings().max_list_limit  # the default: tests run without overrides

CONCURRENT_REQUESTS = 30  # more than the pool's connections and the benchmark's 20 clients


def test_story_rows_match_the_story_view(api_engine):
    with Session(api_engine) as session:
        run = pick_run(session)
        assert run is not None
        rows = list_stories(session, run_id=run.id, limit=MAX_LIST_LIMIT, offset=0)
        assert rows
        for row in rows:
            assert row == story_view(session, row["id"], run.id)
        by_title = list_stories(session, run_id=run.id, limit=MAX_LIST_LIMIT, offset=0, sort="title")
        assert sorted(r["id"] for r in by_title) == sorted(r["id"] for r in rows)
        assert list_stories(session, run_id=run.id, limit=2, offset=1, sort="title") == by_title[1:3]


def test_run_views_list_and_current_run(authed, api_engine):
    started = authed.post("/api/runs", json={"source": "demo"})
    assert started.status_code == 202, started.text
    with Session(api_engine) as session:  # one transaction: now() is the same for every view
        ids = list(session.execute(select(Run.id).order_by(Run.id.desc())).scalars())
        assert len(ids) >= 2
        views = run_read.run_views(session, ids)
        assert [v["id"] for v in views] == ids
        assert run_read.list_runs(session, limit=10, offset=0) == views[:10]
        assert run_read.run_view(session, ids[-1]) == views[-1]
        finished = views[-1]
        assert finished["status"] == "succeeded" and finished["progress"] == 1.0
        assert set(finished["counters"]) == {"embed", "themes", "coverage", "stories"}
        assert run_read.current_run(session)["id"] == started.json()["id"]  # the active one, not the newest finished
        assert run_read.run_views(session, [999_999_999]) == []


def test_conversation_filters_combine(api_engine):
    with Session(api_engine) as session:
        newest = list_conversations(session, limit=5, offset=0)
        anchor = session.get(Conversation, newest[2]["id"])
        assert anchor is not None and anchor.created_at is not None
        since = list_conversations(session, limit=MAX_LIST_LIMIT, offset=0, since=anchor.created_at, source="demo")
        assert [c["id"] for c in since][:3] == [c["id"] for c in newest[:3]]
        assert all(c["created_at"] >= anchor.created_at and c["source"] == "demo" for c in since)
        assert list_conversations(session, limit=5, offset=0, source="no such source") == []


def test_concurrent_requests_stay_within_the_pool(app, api_engine, token):
    """Sessions are rationed to the pool: a burst of requests opens no overflow connections."""
    opened: list[object] = []
    event.listen(api_engine, "connect", lambda connection, record: opened.append(connection))
    paths = ["/api/conversations", "/api/stories", "/api/themes", "/api/runs", "/api/sources", "/api/overview"]

    async def burst() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=headers) as client:
            responses = await asyncio.gather(*(client.get(paths[i % len(paths)]) for i in range(CONCURRENT_REQUESTS)))
        return [r.status_code for r in responses]

    assert asyncio.run(burst()) == [200] * CONCURRENT_REQUESTS
    assert len(opened) <= api_engine.pool.size()


def test_unassigned_conversations_are_counted_and_listed(authed, api_engine):
    """Conversations a run placed in no theme are visible (count and list), never silently absent."""
    with Session(api_engine) as session:
        run_id = pick_run(session).id
        read = set(
            session.execute(select(RunConversation.conversation_id).where(RunConversation.run_id == run_id)).scalars()
        )
        placed = set(session.execute(select(ThemeMember.conversation_id).where(ThemeMember.run_id == run_id)).scalars())
        expected = read - placed
        assert expected, "the sample's run leaves some outliers"
        assert unassigned_count(session, run_id) == len(expected)
        listed = list_conversations(session, limit=MAX_LIST_LIMIT, offset=0, run_id=run_id, unassigned=True)
        assert {c["id"] for c in listed} == expected
    for query in (f"unassigned=1&run_id={run_id}", "unassigned=true"):  # default: the latest succeeded run
        page = authed.get(f"/api/conversations?{query}&limit={MAX_LIST_LIMIT}")
        assert page.status_code == 200, page.text
        assert {c["id"] for c in page.json()["items"]} == expected
    everything = authed.get(f"/api/conversations?run_id={run_id}&limit={MAX_LIST_LIMIT}").json()["items"]
    assert len(everything) > len(expected)  # run_id alone filters nothing
