"""Read and edit endpoints against the real app and a database holding one finished run."""

from __future__ import annotations

from sqlalchemy import select

from threadline.config import ReadSettings
from threadline.db.engine import session_scope
from threadline.db.models import Message, Story

MAX_LIST_LIMIT = ReadSettings().max_list_limit  # the default: tests run without overrides


def test_conversations_list_paginates_and_bounds(authed):
    first = authed.get("/api/conversations", params={"limit": 20}).json()
    assert len(first["items"]) == 20 and first["next_offset"] == 20
    second = authed.get("/api/conversations", params={"limit": 20, "offset": 20}).json()
    assert not {c["id"] for c in first["items"]} & {c["id"] for c in second["items"]}
    times = [c["created_at"] for c in first["items"]]
    assert times == sorted(times, reverse=True)
    assert authed.get("/api/conversations", params={"limit": MAX_LIST_LIMIT + 1}).status_code == 422
    assert authed.get("/api/conversations", params={"limit": 0}).status_code == 422
    everything = authed.get("/api/conversations", params={"limit": MAX_LIST_LIMIT}).json()
    assert everything["next_offset"] is None and len(everything["items"]) >= 150


def test_full_text_search_finds_stemmed_words_in_messages(authed, api_engine):
    with session_scope(api_engine) as session:
        target = session.execute(
            select(Message).where(Message.author_role == "customer", Message.text.ilike("%crash%")).limit(1)
        ).scalar_one()
        target_id = target.conversation_id
    found = authed.get("/api/conversations", params={"q": "crashes", "limit": MAX_LIST_LIMIT}).json()["items"]
    assert target_id in {c["id"] for c in found}
    assert 0 < len(found) < 310  # a filter, not everything
    assert authed.get("/api/conversations", params={"q": "zzqxxv"}).json()["items"] == []
    assert authed.get("/api/conversations", params={"q": "crash -iphone"}).status_code == 200  # web search syntax
    detail = authed.get(f"/api/conversations/{target_id}").json()
    assert any("crash" in m["text"].lower() for m in detail["message_list"])
    assert [m["position"] for m in detail["message_list"]] == sorted(m["position"] for m in detail["message_list"])
    assert detail["themes"] and detail["themes"][0]["run_id"] >= 1
    # the sample arrived by one file import: it brought the conversation, and nothing changed it since
    assert detail["created_by_sync"]["kind"] == "import" and detail["created_by_sync"]["status"] == "succeeded"
    assert detail["changed_by_sync"] == detail["created_by_sync"]
    assert authed.get("/api/conversations/999999999").status_code == 404


def test_theme_tree_detail_trend_and_members(authed):
    groups = authed.get("/api/themes").json()["items"]
    assert groups and sum(len(g["themes"]) for g in groups) >= 8
    theme = groups[0]["themes"][0]
    detail = authed.get(f"/api/themes/{theme['id']}").json()
    assert detail["size"] == theme["size"] and detail["name"] == theme["name"]
    trend = authed.get(f"/api/themes/{theme['id']}/trend").json()
    assert trend["bucket"] == "week" and sum(p["count"] for p in trend["points"]) == theme["size"]
    starts = [p["start"] for p in trend["points"]]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    monthly = authed.get(f"/api/themes/{theme['id']}/trend", params={"bucket": "month"}).json()
    assert sum(p["count"] for p in monthly["points"]) == theme["size"]
    members = authed.get(f"/api/themes/{theme['id']}/conversations", params={"limit": MAX_LIST_LIMIT}).json()
    assert len(members["items"]) == theme["size"]
    if groups[0]["id"] is not None:  # a group counts its themes' members
        group = authed.get(f"/api/themes/{groups[0]['id']}").json()
        assert group["size"] == groups[0]["size"]
    assert authed.get("/api/themes/999999999/trend").status_code == 404


def test_stories_filter_sort_edit_and_export(authed, api_engine):
    page = authed.get("/api/stories").json()
    stories = page["items"]
    # Every story has evidence; one with fewer than three quotes says why (thin or repetitive evidence).
    assert stories and all(s["evidence"] for s in stories)
    assert all(len(s["evidence"]) >= 3 or s["priority"].get("evidence_notes") for s in stories)
    assert [s["rank"] for s in stories] == sorted(s["rank"] for s in stories)
    by_size = authed.get("/api/stories", params={"sort": "conversations"}).json()["items"]
    assert [s["conversations"] for s in by_size] == sorted((s["conversations"] for s in by_size), reverse=True)
    story = stories[0]
    # Evidence offsets point into the stored message text.
    with session_scope(api_engine) as session:
        for evidence in story["evidence"]:
            text = session.get(Message, evidence["message_id"]).text
            assert text[evidence["start"] : evidence["end"]] == evidence["quote"]

    accepted = authed.patch(f"/api/stories/{story['id']}", json={"status": "accepted"}).json()
    assert accepted["status"] == "accepted" and accepted["edited"] is False
    only = authed.get("/api/stories", params={"status": "accepted"}).json()["items"]
    assert [s["id"] for s in only] == [story["id"]]
    edited = authed.patch(
        f"/api/stories/{story['id']}", json={"title": "Fix the thing", "problem": "It breaks."}
    ).json()
    assert edited["title"] == "Fix the thing" and edited["edited"] is True and edited["status"] == "accepted"
    with session_scope(api_engine) as session:
        row = session.get(Story, story["id"])
        assert row.edited and row.human_title == "Fix the thing"
    assert authed.patch(f"/api/stories/{story['id']}", json={"status": "shipped"}).status_code == 422
    assert authed.patch(f"/api/stories/{story['id']}", json={"title": ""}).status_code == 422
    assert authed.patch(f"/api/stories/{story['id']}", json={"rank": 1}).status_code == 422
    assert authed.patch("/api/stories/999999999", json={"status": "accepted"}).status_code == 404

    markdown = authed.get(f"/api/stories/{story['id']}/export.md")
    assert markdown.status_code == 200 and markdown.headers["content-type"].startswith("text/markdown")
    assert (
        markdown.text.startswith("# Fix the thing")
        and story["evidence"][0]["quote"].replace("\n", " ") in markdown.text
    )


def test_sources_overview_and_sync_refusal(authed):
    sources = authed.get("/api/sources").json()["items"]
    assert [s["name"] for s in sources] == ["demo"] and sources[0]["conversations"] >= 150
    assert authed.post(f"/api/sources/{sources[0]['id']}/sync").status_code == 409  # files are imported, not synced
    assert authed.post("/api/sources/999999999/sync").status_code == 404
    overview = authed.get("/api/overview").json()
    assert overview["conversations"] == sources[0]["conversations"]
    assert sum(p["count"] for p in overview["volume"]) <= overview["conversations"]
    assert overview["rising"] and overview["current_run"]["status"] == "succeeded"
