"""A run's end wakes whoever waits for it (NOTIFY at commit), instead of its next poll."""

from __future__ import annotations

import time

from durable_helpers import make_conversations

from threadline.config import get_settings
from threadline.db.engine import session_scope
from threadline.engine.run_end import RunEndListener, announce_run_end
from threadline.engine.runs import create_run, execute_run

SLOW_POLL_S = 30.0  # seconds between the in-process worker's polls: far longer than the run itself


def test_listener_wakes_on_a_committed_end_only(db_engine) -> None:
    with RunEndListener(db_engine) as listener:
        assert listener.wait(0.05) is False
        with session_scope(db_engine) as session:  # rolled back: no notification
            announce_run_end(session, 1)
            session.rollback()
        assert listener.wait(0.2) is False
        with session_scope(db_engine) as session:
            announce_run_end(session, 1)
        start = time.monotonic()
        assert listener.wait(5.0) is True
        assert time.monotonic() - start < 1.0


def test_execute_run_returns_when_the_run_ends_not_at_the_next_poll(db_engine, tmp_path, monkeypatch) -> None:
    make_conversations(db_engine, tmp_path, 6)
    monkeypatch.setenv("THREADLINE_WORKER_POLL_INTERVAL_S", str(SLOW_POLL_S))
    get_settings.cache_clear()
    with session_scope(db_engine) as session:
        run_id = create_run(session, phases=("sleep",), batch_size=3).id
    start = time.monotonic()
    run = execute_run(db_engine, run_id)
    elapsed = time.monotonic() - start
    assert run.status == "succeeded"
    assert elapsed < SLOW_POLL_S / 3, f"execute_run took {elapsed:.1f} s: it waited for a poll"
