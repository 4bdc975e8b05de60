"""Curation, audit and erasure through the API: rename, keep separate, merge, story edits and exports, forget."""

from __future__ import annotations

from sqlalchemy import select, text

from threadline.db.engine import session_scope
from threadline.db.models import Message


def _themes(authed) -> list[dict]:
    return [t for g in authed.get("/api/themes").json()["items"] for t in g["themes"]]


def test_rename_keep_separate_and_merge_are_recorded_with_the_token_name(authed):
    themes = _themes(authed)
    first, second, third = themes[0], themes[1], themes[2]
    renamed = authed.patch(f"/api/themes/{first['id']}", json={"name": "  Exports   time out "})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Exports time out"
    assert renamed.json()["computed_name"] == first["name"]  # the run's own name stays visible
    assert {t["id"]: t["name"] for t in _themes(authed)}[first["id"]] == "Exports time out"

    kept = authed.patch(f"/api/themes/{second['id']}", json={"keep_separate": True})
    assert kept.status_code == 200 and kept.json()["keep_separate"] is True
    refused = authed.post(f"/api/themes/{second['id']}/merge", json={"into": third["id"]})
    assert refused.status_code == 409 and "keep separate" in refused.json()["detail"]
    assert authed.post(f"/api/themes/{third['id']}/merge", json={"into": third["id"]}).status_code == 422
    merged = authed.post(f"/api/themes/{third['id']}/merge", json={"into": first["id"]})
    assert merged.status_code == 200 and merged.json()["merged_into"]["id"] == first["id"]
    assert authed.post(f"/api/themes/{third['id']}/merge", json={"into": first["id"]}).status_code == 409
    assert authed.post("/api/themes/999999999/merge", json={"into": first["id"]}).status_code == 404
    # The snapshot is unchanged: the merged theme is still there, marked.
    assert {t["id"]: t["merged_into"] for t in _themes(authed)}[third["id"]] == first["id"]
    back = authed.patch(f"/api/themes/{first['id']}", json={"name": ""})
    assert back.json()["name"] == first["name"] and back.json()["human_name"] is None

    story_id = renamed.json()["story_identity_id"]
    history = authed.get(f"/api/stories/{story_id}/history").json()
    actions = [(e["action"], e["actor"]) for e in history["history"]]
    assert ("theme.rename", "tests") in actions and ("theme.merge", "tests") in actions
    assert history["runs"] and history["runs"][0]["run_id"] == authed.get("/api/stories").json()["items"][0]["run_id"]


def test_story_status_edit_and_export_are_in_its_history(authed):
    story = authed.get("/api/stories").json()["items"][0]
    authed.patch(f"/api/stories/{story['id']}", json={"status": "accepted"})
    edited = authed.patch(f"/api/stories/{story['id']}", json={"title": "Fix the export timeouts"}).json()
    assert edited["title"] == "Fix the export timeouts" and edited["edited"] and edited["problem"] == story["problem"]
    assert authed.get(f"/api/stories/{story['id']}/export.md").status_code == 200
    events = authed.get(f"/api/stories/{story['id']}/history").json()["history"]
    assert [e["action"] for e in events][:3] == ["story.export", "story.edit", "story.status"]
    assert events[2]["details"] == {"before": "candidate", "after": "accepted"}
    assert all(e["actor"] == "tests" for e in events)
    # The person's title shows with the snapshot it applies to, asked for by run.
    again = authed.get(f"/api/stories/{story['id']}", params={"run_id": story["run_id"]}).json()
    assert again["title"] == "Fix the export timeouts" and again["status"] == "accepted"
    assert authed.get(f"/api/stories/{story['id']}", params={"run_id": 999999}).status_code == 404


def test_forget_erases_text_everywhere_and_records_who_asked(authed, api_engine):
    story = authed.get("/api/stories").json()["items"][0]
    quoted = story["evidence"][0]
    with session_scope(api_engine) as session:
        email = session.execute(
            text(
                "SELECT ct.email FROM conversations c JOIN contacts ct ON ct.id = c.contact_id WHERE c.external_id = :x"
            ),
            {"x": quoted["conversation_external_id"]},
        ).scalar_one()
    assert authed.post("/api/forget", json={}).status_code == 404  # nothing named, nothing matches
    assert authed.post("/api/forget", json={"customer": "nobody@example.invalid"}).status_code == 404
    done = authed.post("/api/forget", json={"customer": email})
    assert done.status_code == 200, done.text
    result = done.json()
    assert result["conversations"] >= 1 and result["contacts"] >= 1 and result["quotes"] >= 1
    after = authed.get(f"/api/stories/{story['id']}", params={"run_id": story["run_id"]}).json()
    erased = next(e for e in after["evidence"] if e["conversation_external_id"] == quoted["conversation_external_id"])
    assert erased["quote"] == "[erased on request]" and erased["changed_since"] is True
    assert quoted["quote"] not in after["problem"]
    with session_scope(api_engine) as session:
        texts = (
            session.execute(
                select(Message.text)
                .join_from(Message, Message.conversation)
                .where(text("conversations.external_id = :x").bindparams(x=quoted["conversation_external_id"]))
            )
            .scalars()
            .all()
        )
        assert texts and set(texts) == {"[erased on request]"}
        assert session.execute(text("SELECT count(*) FROM contacts WHERE email = :e"), {"e": email}).scalar_one() == 0
        event = session.execute(text("SELECT actor, action, details FROM audit_events WHERE action = 'forget'")).one()
        assert event.actor == "tests" and email not in str(event.details)  # who and when, never what
