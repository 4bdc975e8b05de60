"""Digests after a run to a signed webhook and to Slack: signature verifies, payload valid, retries, dead letters, `dlq retry`.

The receivers are real loopback servers from the test package (threadline_testing.notify):
the webhook receiver verifies `Threadline-Signature` as the README tells receivers to, the
Slack stand-in validates every message against a Block Kit schema with Slack's limits.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from seed import later_run, seed_stories
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session
from threadline_testing.notify import Receiver, slack_app, webhook_app
from threadline_testing.serve import serve

from threadline.config import get_settings
from threadline.db.models import DeadLetter, Notification, Run, RunTheme, Story
from threadline.engine.lifecycle import NOTIFY_TASK, finish, lock_run
from threadline.engine.worker import run_worker
from threadline.exporters.notifications import add_channel, notify_run
from threadline.exporters.notify import body_of, signature, verify_signature

SECRET = "whsec-test-secret"
WORKER_TIMEOUT_S = 60  # s: one delivery job takes milliseconds; this bounds a hang
CLI_TIMEOUT_S = 120  # s: one CLI call, start-up included


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Three attempts with millisecond backoffs: the tests count attempts, not wait for them."""
    monkeypatch.setenv("THREADLINE_NOTIFY_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("THREADLINE_NOTIFY_BACKOFF_BASE_S", "0.01")
    monkeypatch.setenv("THREADLINE_NOTIFY_BACKOFF_CAP_S", "0.02")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@contextlib.contextmanager
def webhook(monkeypatch: pytest.MonkeyPatch, receiver: Receiver) -> Iterator[Receiver]:
    with serve(webhook_app(SECRET, receiver)) as url:
        monkeypatch.setenv("TL_HOOK_URL", f"{url}/hooks/threadline")
        monkeypatch.setenv("TL_HOOK_SECRET", SECRET)
        yield receiver


def _add(engine: Any, kind: str, name: str, values: dict[str, Any]) -> None:
    with Session(engine) as session, session.begin():
        add_channel(session, kind, name, values)


def _first_run(engine: Any, stories: int = 2) -> int:
    seed_stories(engine, stories)
    with Session(engine) as session, session.begin():
        run_id = session.execute(select(RunTheme.run_id)).scalars().first()
        # a person's e-mail in a theme name must never leave masked-out
        session.execute(
            update(RunTheme).where(RunTheme.run_id == run_id).values(name="Refunds for ana.lopez@example.com fail")
        )
    assert run_id is not None
    return run_id


def test_webhook_digest_is_signed_and_verifies_and_masks_personal_data(db_engine, monkeypatch) -> None:
    run_id = _first_run(db_engine)
    with webhook(monkeypatch, Receiver()) as receiver:
        _add(db_engine, "webhook", "hook", {"url_env": "TL_HOOK_URL", "secret_env": "TL_HOOK_SECRET"})
        outcomes = notify_run(db_engine, run_id)
        assert [o.action for o in outcomes] == ["delivered"]
        assert receiver.rejected == [] and len(receiver.received) == 1  # the receiver verified the signature
        digest = receiver.received[0]
        assert digest["event"] == "run.finished" and digest["run"]["id"] == run_id
        assert digest["new_themes_total"] == 2 and {t["conversations"] for t in digest["new_themes"]} == {4}
        text = json.dumps(digest)
        assert "ana.lopez@example.com" not in text and "[email]" in text
        assert notify_run(db_engine, run_id)[0].action == "already"  # never sent twice
        assert len(receiver.received) == 1


def test_a_wrong_secret_does_not_verify() -> None:
    body = body_of({"event": "run.finished", "id": "x"})
    now = int(time.time())
    header = signature(SECRET, now, body)
    assert verify_signature(SECRET, header, body, now=now)
    assert not verify_signature("another-secret", header, body, now=now)
    assert not verify_signature(SECRET, header, body + b" ", now=now)  # the raw body, byte for byte
    assert not verify_signature(SECRET, header, body, now=now + 3600)  # a replay an hour later


def test_slack_digest_is_valid_block_kit_and_lists_growing_themes(db_engine, monkeypatch) -> None:
    first = _first_run(db_engine, stories=3)
    receiver = Receiver()
    with serve(slack_app(receiver)) as url:
        monkeypatch.setenv("TL_SLACK_URL", f"{url}/services/T000/B000/XXXX")
        _add(db_engine, "slack", "team", {"url_env": "TL_SLACK_URL"})
        assert [o.action for o in notify_run(db_engine, first)] == ["delivered"]
        story_ids = _story_ids(db_engine)
        second = later_run(db_engine, story_ids[:2], grown_by=3, created_at=_now())  # 4 -> 7: +75%
        assert [o.action for o in notify_run(db_engine, second)] == ["delivered"]
    assert receiver.rejected == [], receiver.rejected  # every message passed the Block Kit schema
    message = receiver.received[1]
    assert message["blocks"][0]["type"] == "header" and "2 growing" in message["text"]
    sections = [b["text"]["text"] for b in message["blocks"] if b["type"] == "section"]
    assert any(s.startswith("*Growing themes*") and "4 → 7 conversations, +75%" in s for s in sections)
    assert "ana.lopez" not in json.dumps(receiver.received)


def test_retries_honour_retry_after_then_deliver(db_engine, monkeypatch) -> None:
    run_id = _first_run(db_engine)
    with webhook(monkeypatch, Receiver(fail_first=1, fail_status=429, retry_after_s=1)) as receiver:
        _add(db_engine, "webhook", "hook", {"url_env": "TL_HOOK_URL", "secret_env": "TL_HOOK_SECRET"})
        outcomes = notify_run(db_engine, run_id)
    assert [o.action for o in outcomes] == ["delivered"] and receiver.requests == 2
    assert receiver.times[1] - receiver.times[0] >= 1.0  # Retry-After: 1 waited out
    with Session(db_engine) as session:
        assert session.execute(select(Notification.status)).scalar_one() == "delivered"
        assert session.execute(select(DeadLetter)).first() is None


def test_retries_then_dead_letter_then_dlq_retry_delivers(db_engine, cli_env, monkeypatch) -> None:
    run_id = _first_run(db_engine)
    receiver = Receiver(fail_first=-1)  # down: every request answers 503
    with webhook(monkeypatch, receiver):
        _add(db_engine, "webhook", "hook", {"url_env": "TL_HOOK_URL", "secret_env": "TL_HOOK_SECRET"})
        outcomes = notify_run(db_engine, run_id)
        assert [o.action for o in outcomes] == ["failed"] and receiver.requests == 3  # the policy's attempts
        assert "channel hook: webhook delivery: HTTP 503 after 3 attempts" == outcomes[0].error
        with Session(db_engine) as session:
            letter = session.execute(select(DeadLetter)).scalar_one()
            assert (letter.stage, letter.item, letter.run_id) == ("notify.hook", str(outcomes[0].notification_id), None)
            assert session.execute(select(Notification.status)).scalar_one() == "failed"

        receiver.fail_first = 0  # the receiver is back
        env = {**cli_env, "TL_HOOK_URL": os.environ["TL_HOOK_URL"], "TL_HOOK_SECRET": SECRET}
        retried = subprocess.run(
            [sys.executable, "-m", "threadline.cli.main", "dlq", "retry", str(letter.id)],
            env=env,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_S,
        )
        assert retried.returncode == 0, retried.stderr
        deadline = time.monotonic() + WORKER_TIMEOUT_S
        run_worker(
            db_engine,
            install_signal_handlers=False,
            until=lambda: _status(db_engine) == "delivered" or time.monotonic() > deadline,
        )
    assert _status(db_engine) == "delivered"
    assert len(receiver.received) == 1 and receiver.received[0]["run"]["id"] == run_id
    with Session(db_engine) as session:
        assert session.execute(select(DeadLetter.retried_at)).scalar_one() is not None


def _status(engine: Any) -> str:
    with Session(engine) as session:
        return str(session.execute(select(Notification.status)).scalar_one())


def _story_ids(engine: Any) -> list[int]:
    with Session(engine) as session:
        return list(session.execute(select(Story.id).order_by(Story.id)).scalars())


def _now() -> datetime:
    return datetime.now(UTC)


def test_a_finished_run_queues_its_digest_and_a_worker_delivers_it(db_engine, monkeypatch) -> None:
    run_id = _first_run(db_engine)
    with Session(db_engine) as session, session.begin():
        session.execute(update(Run).where(Run.id == run_id).values(status="running", finished_at=None))
    with webhook(monkeypatch, Receiver()) as receiver:
        with Session(db_engine) as session, session.begin():
            finish(session, lock_run(session, run_id))  # no channel yet: nothing queued
        assert _jobs(db_engine) == []
        _add(db_engine, "webhook", "hook", {"url_env": "TL_HOOK_URL", "secret_env": "TL_HOOK_SECRET"})
        with Session(db_engine) as session, session.begin():
            run = lock_run(session, run_id)
            run.status = "running"
            finish(session, run)
        assert _jobs(db_engine) == [NOTIFY_TASK]
        deadline = time.monotonic() + WORKER_TIMEOUT_S
        run_worker(
            db_engine,
            install_signal_handlers=False,
            until=lambda: bool(receiver.received) or time.monotonic() > deadline,
        )
    assert len(receiver.received) == 1 and receiver.received[0]["run"]["id"] == run_id
    assert _status(db_engine) == "delivered"


def test_notify_add_list_remove_from_the_cli(cli_env) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "threadline.cli.main", "notify", *args],
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_S,
        )

    added = cli("add", "webhook", "--name", "ops", "--url-env", "DIGEST_URL", "--secret-env", "DIGEST_SECRET")
    assert added.returncode == 0 and "$DIGEST_URL, $DIGEST_SECRET" in added.stdout, added.stderr
    slack = json.loads(cli("add", "slack", "--name", "team", "--url-env", "SLACK_URL", "--json").stdout)
    assert slack["kind"] == "slack" and slack["config"] == {"url_env": "SLACK_URL"}
    bad = cli("add", "slack", "--name", "x", "--url-env", "https://hooks.slack.com/services/T/B/secret")
    assert bad.returncode == 2 and "url_env" in bad.stderr and "hooks.slack.com" not in bad.stderr
    listed = json.loads(cli("list", "--json").stdout)
    assert [(c["name"], c["kind"]) for c in listed] == [("ops", "webhook"), ("team", "slack")]
    assert listed[0]["config"] == {"url_env": "DIGEST_URL", "secret_env": "DIGEST_SECRET"}
    assert json.loads(cli("remove", "team", "--json").stdout) == {"channel": "team", "removed": True}
    assert cli("remove", "team").returncode == 2


def _jobs(engine: Any) -> list[str]:
    with Session(engine) as session:
        return list(session.execute(text("SELECT task_name FROM procrastinate_jobs ORDER BY id")).scalars())
