"""Every dashboard page renders for a signed-in session (TestClient; the browser test covers the flows)."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from threadline.config import Settings
from threadline.db.engine import session_scope
from threadline.db.models import DeadLetter


@pytest.fixture()
def signed_in(sample_engine: Engine, web_token: str, db_url: str, tmp_path):
    from threadline.app import create_app

    app = create_app(Settings(home=tmp_path / "home", database_url=db_url), engine=sample_engine)
    with TestClient(app, follow_redirects=False) as client:
        form = client.get("/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
        assert client.post("/login", data={"token": web_token, "csrf_token": csrf}).status_code == 303
        yield client


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_pages_render_before_any_run(signed_in):
    pages = ("/", "/themes", "/stories", "/conversations", "/conversations?q=export", "/documentation", "/runs")
    for path in (*pages, "/dead-letters"):
        response = signed_in.get(path)
        assert response.status_code == 200, path
        assert '<script src="/static/app.js"' in response.text and "https://" not in response.text.split("<main>")[0]
    conversations = signed_in.get("/conversations?q=export").text
    first = re.search(r'href="/conversations/(\d+)"', conversations).group(1)
    page = signed_in.get(f"/conversations/{first}")
    assert page.status_code == 200
    assert re.search(
        r"Brought by import #\d+ \(\d{4}-\d\d-\d\d \d\d:\d\d, succeeded\)\s+· not changed since", page.text
    )
    assert signed_in.get("/stories/999999").status_code == 404
    assert signed_in.get("/static/app.css").status_code == 200


def test_dead_letter_retry_and_run_errors_from_forms(signed_in, sample_engine):
    with session_scope(sample_engine) as session:
        letter = DeadLetter(run_id=None, stage="embed", item="7", error_class="RuntimeError", error_message="boom")
        session.add(letter)
        session.flush()
        letter_id = letter.id
    page = signed_in.get("/dead-letters")
    assert "RuntimeError" in page.text
    assert signed_in.post(f"/dead-letters/{letter_id}/retry").status_code == 403  # no CSRF value
    done = signed_in.post(f"/dead-letters/{letter_id}/retry", data={"csrf_token": csrf_of(page.text)})
    assert done.status_code == 303 and "note=retried" in done.headers["location"]
    again = signed_in.post(f"/dead-letters/{letter_id}/retry", data={"csrf_token": csrf_of(page.text)})
    assert "already+retried" in again.headers["location"]

    runs = signed_in.get("/runs")
    refused = signed_in.post("/runs", data={"csrf_token": csrf_of(runs.text), "source": "nope"})
    assert refused.status_code == 303 and refused.headers["location"].startswith("/runs?error=")
    started = signed_in.post("/runs", data={"csrf_token": csrf_of(runs.text), "source": "demo", "since": "2026-01-01"})
    run_path = started.headers["location"]
    assert re.fullmatch(r"/runs/\d+", run_path)
    run_page = signed_in.get(run_path)
    assert run_page.status_code == 200 and "Stop" in run_page.text
    progress = signed_in.get(run_path + "/progress.json").json()
    assert progress["status"] in ("queued", "running") and 0 <= progress["progress"] <= 1
    stopped = signed_in.post(run_path + "/stop", data={"csrf_token": csrf_of(run_page.text)})
    assert stopped.status_code == 303
    assert signed_in.get(run_path + "/progress.json").json()["status"] in ("stopping", "stopped")


def test_run_form_refuses_an_inverted_period_with_a_form_error(signed_in, sample_engine):
    from sqlalchemy import func, select

    from threadline.db.models import Run

    runs = signed_in.get("/runs")
    refused = signed_in.post(
        "/runs",
        data={"csrf_token": csrf_of(runs.text), "source": "demo", "since": "2026-11-01", "until": "2026-09-01"},
    )
    assert refused.status_code == 422 and 'role="alert"' in refused.text and "must be before" in refused.text
    assert 'value="2026-11-01"' in refused.text  # the form keeps what was typed
    nothing = signed_in.post("/runs", data={"csrf_token": csrf_of(runs.text), "since": "2030-01-01"})
    assert nothing.status_code == 422 and "no conversation matches" in nothing.text
    with session_scope(sample_engine) as session:
        assert session.execute(select(func.count()).select_from(Run)).scalar_one() == 0
