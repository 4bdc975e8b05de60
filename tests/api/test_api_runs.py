"""Runs and dead letters through the API: start queues work (no pipeline work in the server), stop, resume, retry."""

from __future__ import annotations

from threadline.db.engine import session_scope
from threadline.db.models import DeadLetter


def test_start_list_show_stop_resume(authed):
    started = authed.post("/api/runs", json={"source": "demo", "since": "2026-01-01T00:00:00Z"})
    assert started.status_code == 202, started.text
    run = started.json()
    assert run["status"] in ("queued", "running") and run["params"]["source"] == "demo" and run["conversations"] > 0
    assert run["progress"] < 1.0  # nothing ran in the server itself

    listed = authed.get("/api/runs", params={"limit": 1}).json()
    assert listed["items"][0]["id"] == run["id"] and listed["next_offset"] == 1  # the fixture's run is older
    assert authed.get(f"/api/runs/{run['id']}").json()["id"] == run["id"]

    stopped = authed.post(f"/api/runs/{run['id']}/stop").json()
    assert stopped["status"] in ("stopping", "stopped")
    again = authed.post(f"/api/runs/{run['id']}/stop")
    assert again.status_code in (200, 409)
    if stopped["status"] == "stopped":
        resumed = authed.post(f"/api/runs/{run['id']}/resume")
        assert resumed.status_code == 200 and resumed.json()["status"] in ("queued", "running")
    finished_run = listed["items"][0]["id"] - 1
    assert authed.post(f"/api/runs/{finished_run}/stop").status_code == 409  # succeeded runs cannot stop
    assert authed.post(f"/api/runs/{finished_run}/resume").status_code == 409
    assert authed.get("/api/runs/999999999").status_code == 404
    assert authed.post("/api/runs/999999999/stop").status_code == 404


def test_start_refuses_unknown_source_and_extra_fields(authed):
    assert authed.post("/api/runs", json={"source": "nope"}).status_code == 404
    assert authed.post("/api/runs", json={"phases": ["embed"]}).status_code == 422


def test_dead_letters_list_and_retry_once(authed, api_engine):
    with session_scope(api_engine) as session:
        letter = DeadLetter(run_id=None, stage="embed", item="42", error_class="ValueError", error_message="bad input")
        session.add(letter)
        session.flush()
        letter_id = letter.id
    listed = authed.get("/api/dead-letters").json()["items"]
    assert [d["id"] for d in listed] == [letter_id] and listed[0]["error_class"] == "ValueError"
    first = authed.post(f"/api/dead-letters/{letter_id}/retry")
    assert first.status_code == 200 and first.json() == {"id": letter_id, "retried": True}
    assert authed.post(f"/api/dead-letters/{letter_id}/retry").status_code == 409
    assert authed.get("/api/dead-letters").json()["items"] == []
    assert authed.post("/api/dead-letters/999999999/retry").status_code == 404
