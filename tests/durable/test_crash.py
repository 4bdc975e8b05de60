"""A worker SIGKILLed mid-run loses nothing: its jobs are taken over and every result exists once."""

from __future__ import annotations

import signal
from collections import Counter

import pytest
from durable_helpers import (
    FAST_WORKER,
    alive,
    item_states,
    make_conversations,
    run_status,
    tail,
    wait_until,
    worker,
    worker_env,
)
from sqlalchemy import func, select, text

from threadline.analysis.conversation_type import TYPE_ANALYSIS as TYPE_STAGE
from threadline.db.engine import session_scope
from threadline.db.models import Analysis, Embedding, Run, ThemeMember
from threadline.engine.budget import live_worker_count
from threadline.engine.runs import create_run

CONVERSATIONS = 500


def _requeued_batches(engine) -> int:
    with session_scope(engine) as session:
        return session.execute(
            text(
                "SELECT count(*) FROM procrastinate_events e JOIN procrastinate_jobs j ON j.id = e.job_id "
                "WHERE e.type = 'deferred_for_retry' AND j.task_name = 'threadline.batch'"
            )
        ).scalar_one()


def _busy_jobs(engine) -> int:
    with session_scope(engine) as session:
        return session.execute(
            text(
                "SELECT count(DISTINCT worker_id) FROM procrastinate_jobs WHERE status = 'doing' AND task_name = 'threadline.batch'"
            )
        ).scalar_one()


@pytest.mark.slow
def test_sigkilled_worker_jobs_are_taken_over_and_the_run_completes_exactly_once(db_engine, cli_env, tmp_path):
    ids = make_conversations(db_engine, tmp_path, CONVERSATIONS)
    with session_scope(db_engine) as session:
        run_id = create_run(session, batch_size=25).id
    env = worker_env(cli_env)
    survivor_log, victim_log = tmp_path / "survivor.log", tmp_path / "victim.log"
    with (
        worker(env, survivor_log, "--concurrency", "1", *FAST_WORKER) as survivor,
        worker(env, victim_log, "--concurrency", "1", *FAST_WORKER) as victim,
    ):
        # Kill the victim while both workers hold a batch (so it dies mid-batch), part-way through embed.
        wait_until(
            lambda: item_states(db_engine, run_id, "embed").get("done", 0) >= 50 and _busy_jobs(db_engine) == 2,
            180,
            f"both workers busy\n{tail(survivor_log)}\n{tail(victim_log)}",
            poll_s=0.05,
        )
        assert live_worker_count(db_engine, stalled_after_s=4) == 2  # each gets half of a provider budget
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        done_at_kill = item_states(db_engine, run_id, "embed").get("done", 0)
        assert done_at_kill < CONVERSATIONS
        wait_until(
            lambda: run_status(db_engine, run_id) in ("succeeded", "failed"), 240, f"run end\n{tail(survivor_log)}"
        )
        assert alive(survivor)
        assert live_worker_count(db_engine, stalled_after_s=4) == 1  # the dead worker's share returns to the survivor
        # The takeover really happens: the dead worker's batch job goes back to the queue. When the worker died
        # after committing its batch, the run can end before the sweep sees the silent worker, so wait for it.
        wait_until(lambda: _requeued_batches(db_engine) >= 1, 120, f"takeover\n{tail(survivor_log)}")
    assert run_status(db_engine, run_id) == "succeeded", tail(survivor_log)
    with session_scope(db_engine) as session:
        run = session.get(Run, run_id)
        c = run.counters["embed"]
        assert c["done"] + c["skipped"] == c["total"] == CONVERSATIONS and c["dead"] == 0, c
        assert item_states(db_engine, run_id, "embed") == {"done": CONVERSATIONS}
        assert c["typed"] == CONVERSATIONS  # each type computed once, in the embed batch, despite the takeover
        embeddings = Counter(session.execute(select(Embedding.conversation_id)).scalars())
        analyses = Counter(
            session.execute(select(Analysis.conversation_id).where(Analysis.stage == TYPE_STAGE)).scalars()
        )
        assert set(embeddings) == set(ids) and set(embeddings.values()) == {1}  # exactly one result, none missing
        assert set(analyses) == set(ids) and set(analyses.values()) == {1}
        members = session.execute(
            select(func.count(), func.count(func.distinct(ThemeMember.conversation_id))).where(
                ThemeMember.run_id == run_id
            )
        ).one()
        assert members[0] == members[1] > 0  # at most one theme per conversation
        assert run.counters["themes"]["done"] == 1 and run.counters["stories"]["done"] == 1
    assert "requeued job" in survivor_log.read_text() or "requeued job" in victim_log.read_text()
