"""Paths and commands shared by tests (import as `from support import ...`)."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from threadline.db.embedded import ensure_database
from threadline.db.models import (
    Conversation,
    Message,
    Run,
    RunConversation,
    RunStory,
    RunStoryEvidence,
    RunTheme,
    Scope,
    Source,
    Story,
    Theme,
    ThemeMember,
    Tracker,
    TrackerLink,
)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
EXAMPLES = REPO / "examples" / "conversations.jsonl"
SCREENSHOTS = REPO / "tests" / "web" / "screenshots"  # browser tests save their pages here (gitignored)


def threadline_command() -> list[str]:
    """The `threadline` CLI of this interpreter (works without the console script on PATH)."""
    return [sys.executable, "-m", "threadline.cli.main"]


@contextmanager
def worker_process(env: dict[str, str], log: Path, *args: str) -> Iterator[subprocess.Popen]:
    """A real `threadline worker` subprocess logging to `log` (SIGTERM, then SIGKILL, at exit)."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            [*threadline_command(), "worker", *args], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield process
    finally:
        stop_process(process, signal.SIGTERM, timeout_s=WORKER_STOP_TIMEOUT_S)


WORKER_STOP_TIMEOUT_S = 30  # seconds for a worker to finish in-flight jobs after its stop signal before it is killed


def stop_process(process: subprocess.Popen, stop_signal: int, *, timeout_s: float) -> None:
    """Send `stop_signal` to a still-running process, wait up to `timeout_s` seconds, then kill it."""
    if process.poll() is not None:
        return
    process.send_signal(stop_signal)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


_clones = itertools.count()


def database_url(maintenance: str, name: str) -> str:
    """SQLAlchemy URL of database `name` on the server behind the libpq `maintenance` URI."""
    return (
        make_url(maintenance).set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)
    )


@contextmanager
def cloned_database(maintenance: str, template: str, prefix: str = "test") -> Iterator[str]:
    """A fresh database copied from `template` (CREATE DATABASE ... TEMPLATE), dropped afterwards."""
    name = f"{prefix}_{os.getpid()}_{next(_clones)}"
    ensure_database(maintenance, name, template=template)
    try:
        yield database_url(maintenance, name)
    finally:
        with psycopg.connect(maintenance, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


BACKEND_EXIT_TIMEOUT_S = 30.0  # a closed connection's server process ends within this, even on a loaded machine


def close_for_real(holder: Connection, engine: Engine) -> None:
    """Close `holder`'s server session as a dying process would, and wait until the server has ended it.

    `invalidate()` closes the socket, but the server notices and releases the session's advisory
    locks a moment later; a check made in between would still see them held.
    """
    pid = holder.execute(text("SELECT pg_backend_pid()")).scalar_one()
    holder.invalidate()
    deadline = time.monotonic() + BACKEND_EXIT_TIMEOUT_S
    with engine.connect() as probe:
        while probe.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}).scalar_one():
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"server process {pid} still alive {BACKEND_EXIT_TIMEOUT_S} s after its connection closed"
                )
            time.sleep(0.02)
            probe.rollback()


def seed_a_run(session: Session) -> None:
    """One succeeded run with a group, a theme, an unassigned conversation, a story with a quote and a tracker item."""
    at = datetime(2026, 9, 1, tzinfo=UTC)
    source = Source(kind="file", name="demo")
    session.add(source)
    session.flush()
    quoted = Conversation(source_id=source.id, external_id="c1", content_hash="h", created_at=at)
    outlier = Conversation(source_id=source.id, external_id="c2", content_hash="h", created_at=at)
    scope = Scope(key=str(source.id), source_ids=[source.id])
    session.add_all([quoted, outlier, scope])
    session.flush()
    text = "The nightly export fails every time."
    session.add(Message(conversation_id=quoted.id, position=0, author_role="customer", raw_text=text, text=text))
    run = Run(status="succeeded", scope_id=scope.id, period_start=at, period_end=at)
    group, theme = Theme(scope_id=scope.id, level=0), Theme(scope_id=scope.id, level=1, human_name="Exports")
    session.add_all([run, group, theme])
    session.flush()
    story = Story(theme_id=theme.id, status="accepted")
    tracker = Tracker(name="eng", kind="github")
    session.add_all([story, tracker])
    session.add_all([RunConversation(run_id=run.id, conversation_id=c.id) for c in (quoted, outlier)])
    session.add_all(
        [
            RunTheme(run_id=run.id, theme_id=group.id, level=0, name="Data", size=1),
            RunTheme(run_id=run.id, theme_id=theme.id, level=1, parent_id=group.id, name="export", size=1),
            ThemeMember(run_id=run.id, conversation_id=quoted.id, theme_id=theme.id, similarity=0.9),
        ]
    )
    session.flush()
    snapshot = RunStory(
        run_id=run.id, story_id=story.id, theme_id=theme.id, title="Nightly export fails", problem="p", rank=1
    )
    session.add_all([snapshot, TrackerLink(story_id=story.id, tracker_id=tracker.id, item_key="7", url="u")])
    session.flush()
    session.add(
        RunStoryEvidence(
            run_story_id=snapshot.id,
            position=0,
            conversation_id=quoted.id,
            conversation_external_id="c1",
            message_position=0,
            author_role="customer",
            quote="nightly export fails",
            start_offset=4,
            end_offset=24,
        )
    )
    session.commit()
