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


def _run_count(api_engine) -> int:
    from sqlalchemy import func, select

    from threadline.db.models import Run

    with session_scope(api_engine) as session:
        return session.execute(select(func.count()).select_from(Run)).scalar_one()


def test_start_refuses_an_inverted_period_or_one_matching_nothing_before_writing(authed, api_engine):
    before = _run_count(api_engine)
    inverted = authed.post("/api/runs", json={"since": "2026-11-01T00:00:00Z", "until": "2026-09-01T00:00:00Z"})
    assert inverted.status_code == 422 and "since must be before until" in inverted.text
    empty = authed.post("/api/runs", json={"source": "demo", "since": "2030-01-01T00:00:00Z"})
    assert empty.status_code == 422
    assert "no conversation matches source demo; created on or after 2030-01-01" in empty.json()["detail"]
    assert _run_count(api_engine) == before  # nothing was written


def test_several_sources_make_one_scope_and_views_take_run_and_source(authed, api_engine):
    from threadline.connectors.files.importer import import_file

    path = _tiny_source(api_engine)
    import_file(api_engine, path, source_name="tiny")
    started = authed.post("/api/runs", json={"sources": ["tiny", "demo"]})
    assert started.status_code == 202 and started.json()["sources"] == ["demo", "tiny"]
    scopes = {tuple(s["sources"]): s for s in authed.get("/api/scopes").json()["items"]}
    assert ("demo",) in scopes and ("demo", "tiny") in scopes
    demo_run = scopes[("demo",)]["latest_succeeded_run_id"]
    by_source = authed.get("/api/stories", params={"source": "demo"}).json()["items"]
    assert by_source and {s["run_id"] for s in by_source} == {demo_run}
    assert authed.get("/api/stories", params={"source": ["demo", "tiny"]}).status_code == 200  # no run succeeded yet
    assert authed.get("/api/stories", params={"source": "nope"}).status_code == 404
    assert authed.get("/api/themes", params={"run_id": demo_run, "source": "tiny"}).status_code == 404
    mismatch = authed.get("/api/stories", params={"run_id": started.json()["id"], "source": "demo"})
    assert mismatch.status_code == 422 and "not demo" in mismatch.json()["detail"]
    changes = authed.get("/api/changes", params={"run_id": demo_run}).json()
    assert changes["run"]["id"] == demo_run and changes["previous_run"] is None
    assert len(changes["new_themes"]) >= 8  # the first run of its scope: every theme is new
    overview = authed.get("/api/overview", params={"source": "demo"}).json()
    assert overview["run"]["id"] == demo_run and overview["since_last_run"]["previous_run"] is None
    assert sum(p["count"] for p in overview["volume"]) == overview["conversations"]
    assert all(r["direction"] in ("rising", "new") for r in overview["rising"])


def _tiny_source(api_engine):
    import json
    import tempfile
    from pathlib import Path

    path = Path(tempfile.mkdtemp()) / "tiny.jsonl"
    path.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"t{i}",
                    "created_at": "2026-10-01T10:00:00+00:00",
                    "messages": [{"author": "customer", "text": f"Question number {i} about something."}],
                }
            )
            + "\n"
            for i in range(3)
        )
    )
    return path
