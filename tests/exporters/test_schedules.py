"""Schedules: a worker's periodic tick starts sync -> run -> deliver of a scope; a failed sync notifies too.

Short periods (`--every 1s`) against the in-process worker; the digest arrives at the test
package's webhook receiver, which verifies its signature.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from threadline_testing.notify import Receiver, webhook_app
from threadline_testing.serve import serve

from threadline.config import get_settings
from threadline.connectors.files.importer import import_file
from threadline.db.models import Run, Schedule, Source
from threadline.engine.schedules import ScheduleError, add_schedule, claim_due, parse_every
from threadline.engine.worker import run_worker
from threadline.exporters.notifications import add_channel

SECRET = "whsec-schedules"
EXAMPLES = Path(__file__).parents[2] / "examples" / "conversations.jsonl"
SCHEDULED_RUN_TIMEOUT_S = 480  # s: the sample's run takes well under a minute alone; CI machines are shared
FAILURE_TIMEOUT_S = 60  # s: a failed sync is reported within a tick or two
CLI_TIMEOUT_S = 120  # s: one CLI call, start-up included


@pytest.fixture
def receiver(db_engine: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    monkeypatch.setenv("THREADLINE_NOTIFY_MAX_ATTEMPTS", "2")
    get_settings.cache_clear()
    state = Receiver()
    with serve(webhook_app(SECRET, state)) as url:
        monkeypatch.setenv("TL_HOOK_URL", f"{url}/hooks/threadline")
        monkeypatch.setenv("TL_HOOK_SECRET", SECRET)
        with Session(db_engine) as session, session.begin():
            add_channel(session, "webhook", "hook", {"url_env": "TL_HOOK_URL", "secret_env": "TL_HOOK_SECRET"})
        yield state
    get_settings.cache_clear()


def _events(receiver: Receiver) -> list[str]:
    return [digest["event"] for digest in receiver.received]


def test_periods_and_validation(db_engine) -> None:
    assert [parse_every(v) for v in ("30s", "15m", "1h", "1d")] == [30, 900, 3600, 86400]
    for bad in ("1w", "h", "0s", "-1h"):
        with pytest.raises(ScheduleError):
            parse_every(bad)
    with Session(db_engine) as session, session.begin():
        session.add(Source(kind="file", name="demo", config={}))
    with Session(db_engine) as session, session.begin():
        with pytest.raises(ScheduleError, match="no source named 'nope'"):
            add_schedule(session, ["nope"], every="1h")
        with pytest.raises(ScheduleError, match="not both"):
            add_schedule(session, ["demo"], every="1h", cron="0 * * * *")
        with pytest.raises(ScheduleError, match="not a valid cron"):
            add_schedule(session, ["demo"], cron="every day")
        first = add_schedule(session, ["demo"], cron="0 7 * * 1-5")
        assert first.next_at.hour == 7 and first.next_at.minute == 0
        again = add_schedule(session, ["demo"], every="1h")  # one schedule per scope: the timing is replaced
        assert again.id == first.id and again.cron is None and again.every_s == 3600
        schedule_id, due = again.id, again.next_at
    with Session(db_engine) as session, session.begin():
        assert claim_due(session) == []  # not due for an hour
        assert claim_due(session, now=due) == [schedule_id]  # claimed once: next_at moved on by the period
        assert claim_due(session, now=due) == []
        assert session.get(Schedule, schedule_id).next_at == due + timedelta(hours=1)


def test_a_scheduled_sync_run_and_digest_without_anyone_at_a_keyboard(db_engine, cli_env, receiver) -> None:
    import_file(db_engine, EXAMPLES, source_name="demo")
    added = subprocess.run(
        [
            sys.executable,
            "-m",
            "threadline.cli.main",
            "schedules",
            "add",
            "--source",
            "demo",
            "--every",
            "1s",
            "--json",
        ],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
    )
    assert added.returncode == 0, added.stderr
    schedule_id = json.loads(added.stdout)["id"]
    deadline = time.monotonic() + SCHEDULED_RUN_TIMEOUT_S
    run_worker(
        db_engine,
        concurrency=2,
        install_signal_handlers=False,
        until=lambda: "run.finished" in _events(receiver) or time.monotonic() > deadline,
    )
    assert "run.finished" in _events(receiver), (receiver.received, receiver.rejected)
    digest = next(d for d in receiver.received if d["event"] == "run.finished")
    assert digest["new_themes_total"] >= 1 and digest["run"]["scope"]
    with Session(db_engine) as session:
        schedule = session.get(Schedule, schedule_id)
        assert schedule is not None and schedule.last_run_id is not None and schedule.last_error is None
        assert session.get(Run, digest["run"]["id"]).status == "succeeded"
    listed = subprocess.run(
        [sys.executable, "-m", "threadline.cli.main", "schedules", "list", "--json"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
    )
    assert json.loads(listed.stdout)[0]["sources"] == ["demo"]


def test_a_failed_scheduled_sync_notifies(db_engine, receiver, monkeypatch) -> None:
    monkeypatch.delenv("TL_NO_SUCH_TOKEN", raising=False)
    with Session(db_engine) as session, session.begin():
        session.add(Source(kind="intercom", name="ic", config={"token_env": "TL_NO_SUCH_TOKEN"}))
    with Session(db_engine) as session, session.begin():
        schedule_id = add_schedule(session, ["ic"], every="1s").id
    deadline = time.monotonic() + FAILURE_TIMEOUT_S
    run_worker(
        db_engine,
        install_signal_handlers=False,
        until=lambda: "schedule.failed" in _events(receiver) or time.monotonic() > deadline,
    )
    failure = next(d for d in receiver.received if d["event"] == "schedule.failed")
    assert "ic" in failure["summary"] and "TL_NO_SUCH_TOKEN" in failure["error"]
    with Session(db_engine) as session:
        schedule = session.get(Schedule, schedule_id)
        assert schedule is not None and schedule.last_error and schedule.last_run_id is None
        assert session.execute(select(Run.id)).first() is None  # no run without the sync


def test_schedules_from_the_api(db_engine, db_url, tmp_path) -> None:
    from fastapi.testclient import TestClient

    from threadline.app import create_app
    from threadline.config import Settings
    from threadline.db.engine import session_scope
    from threadline.server.tokens import create_token

    with Session(db_engine) as session, session.begin():
        session.add(Source(kind="file", name="demo", config={}))
    with session_scope(db_engine) as session:
        token = create_token(session, "ops")
    app = create_app(Settings(home=tmp_path / "home", database_url=db_url), engine=db_engine)
    auth = {"Authorization": f"Bearer {token}"}
    with TestClient(app) as client:
        created = client.post("/api/schedules", json={"sources": ["demo"], "every": "1h"}, headers=auth)
        assert created.status_code == 201 and created.json()["every_s"] == 3600
        refused = client.post("/api/schedules", json={"sources": ["demo"], "cron": "nope"}, headers=auth)
        assert refused.status_code == 409
        unknown = client.post("/api/schedules", json={"sources": ["nope"], "every": "1h"}, headers=auth)
        assert unknown.status_code == 404
        assert [s["sources"] for s in client.get("/api/schedules", headers=auth).json()] == [["demo"]]
        assert client.delete(f"/api/schedules/{created.json()['id']}", headers=auth).json()["removed"] is True
        assert client.delete(f"/api/schedules/{created.json()['id']}", headers=auth).status_code == 404
        assert client.get("/api/schedules").status_code == 401
