"""`run --detach` only enqueues; stop finishes in-flight work, starts nothing new; resume completes."""

from __future__ import annotations

import json
import time

from durable_helpers import (
    FAST_WORKER,
    doing_jobs,
    item_states,
    make_conversations,
    run_cli,
    run_status,
    tail,
    wait_until,
    worker,
    worker_env,
)
from sqlalchemy import func, select, text

from threadline.db.engine import session_scope
from threadline.db.models import Embedding, Run, RunItem
from threadline.engine.runs import create_run


def test_run_detach_only_enqueues(db_engine, cli_env, tmp_path):
    make_conversations(db_engine, tmp_path, 30)
    started = time.monotonic()
    out = json.loads(run_cli(worker_env(cli_env), "run", "--detach", "--json").stdout)
    elapsed = time.monotonic() - started
    assert out["status"] == "queued"
    with session_scope(db_engine) as session:
        run = session.get(Run, out["run_id"])
        assert run.status == "queued" and run.started_at is None and run.counters["conversations"] == 30
        states = session.execute(
            select(RunItem.state, func.count()).where(RunItem.run_id == run.id).group_by(RunItem.state)
        ).all()
        assert dict(states) == {
            "pending": 30
        }  # one embed item per conversation (types are computed there), none touched
        assert session.execute(select(func.count()).select_from(Embedding)).scalar_one() == 0
        jobs = session.execute(text("SELECT task_name, status::text FROM procrastinate_jobs")).all()
        assert [tuple(j) for j in jobs] == [("threadline.advance", "todo")]  # queued, not executed
    assert elapsed < 60, elapsed  # no model load, no pipeline work


def test_stop_then_resume_does_only_unfinished_work(db_engine, cli_env, tmp_path):
    ids = make_conversations(db_engine, tmp_path, 200)
    with session_scope(db_engine) as session:
        run_id = create_run(session, phases=("sleep",), batch_size=5, options={"sleep_ms": 300}).id
    env = worker_env(cli_env)
    log = tmp_path / "worker.log"
    with worker(env, log, "--concurrency", "2", *FAST_WORKER):
        wait_until(lambda: item_states(db_engine, run_id, "sleep").get("done", 0) >= 30, 90, f"progress\n{tail(log)}")
        stopped = json.loads(run_cli(env, "runs", "stop", str(run_id), "--json").stdout)
        assert stopped["status"] in ("stopping", "stopped")
        # Bounded: in-flight batches (0.3 s each) finish, then the run is stopped.
        t0 = time.monotonic()
        wait_until(lambda: run_status(db_engine, run_id) == "stopped", 10, f"stopped\n{tail(log)}")
        assert time.monotonic() - t0 < 10
        # The job whose batch ended the run is marked finished by procrastinate right after.
        wait_until(lambda: doing_jobs(db_engine) == 0, 5, f"jobs still doing\n{tail(log)}")
        frozen = item_states(db_engine, run_id, "sleep")
        time.sleep(2.0)  # the worker keeps running: nothing more may start
        assert item_states(db_engine, run_id, "sleep") == frozen
        assert 30 <= frozen.get("done", 0) < len(ids) and frozen.get("pending", 0) > 0
        with session_scope(db_engine) as session:
            stop_at = session.get(Run, run_id).stop_requested_at
            late = session.execute(
                select(func.count()).where(RunItem.run_id == run_id, RunItem.started_at > stop_at)
            ).scalar_one()
            assert late == 0  # no item started after the stop request
            done_before = set(
                session.execute(
                    select(RunItem.conversation_id, RunItem.finished_at).where(
                        RunItem.run_id == run_id, RunItem.state == "done"
                    )
                ).all()
            )

        resumed = json.loads(run_cli(env, "runs", "resume", str(run_id), "--json").stdout)
        assert resumed["status"] == "running" and resumed["generation"] == 1
        wait_until(lambda: run_status(db_engine, run_id) == "succeeded", 90, f"resumed run\n{tail(log)}")
    with session_scope(db_engine) as session:
        rows = session.execute(
            select(RunItem.conversation_id, RunItem.finished_at, RunItem.attempts, RunItem.state).where(
                RunItem.run_id == run_id
            )
        ).all()
        assert len(rows) == len(ids) and {r.state for r in rows} == {"done"}
        assert {(r.conversation_id, r.finished_at) for r in rows} >= done_before  # finished items untouched by resume
        assert all(r.attempts == 1 for r in rows)  # each item ran exactly once across stop and resume
        counters = session.get(Run, run_id).counters["sleep"]
        assert counters["done"] == len(ids) and counters["dead"] == 0 and counters["skipped"] == 0
    view = json.loads(run_cli(env, "runs", "show", str(run_id), "--json").stdout)
    assert view["progress"] == 1.0 and view["counters"]["sleep"]["done"] == len(ids)
