"""Transient faults are retried with backoff, permanent ones dead-lettered; dlq retry is atomic."""

from __future__ import annotations

import json
import subprocess
import threading

from durable_helpers import (
    FAST_WORKER,
    item_states,
    make_conversations,
    run_cli,
    run_status,
    tail,
    threadline_command,
    wait_until,
    worker,
    worker_env,
)
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session
from threadline_testing.faults import FaultInjector

from threadline.config import get_settings
from threadline.db.engine import session_scope
from threadline.db.models import DeadLetter, Embedding, Run, RunItem
from threadline.engine.runs import create_run, execute_run
from threadline.engine.service import retry_dead_letter


def test_faults_end_done_or_dead_and_dlq_retry_brings_them_to_done(db_engine, cli_env, tmp_path):
    ids = make_conversations(db_engine, tmp_path, 120)
    permanent = ids[:3]
    faults = {
        "stage": "embed",
        "transient_share": 0.3,
        "transient_failures": 2,
        "permanent": permanent,
        "retry_after_s": 0.3,
        "seed": 1,
    }
    transient = [
        i
        for i in ids
        if FaultInjector(stage="embed", transient_share=0.3, seed=1).is_transient_item(i) and i not in permanent
    ]
    assert len(transient) >= 20
    with session_scope(db_engine) as session:
        run_id = create_run(session, phases=("embed",), batch_size=20).id
    log = tmp_path / "worker.log"
    with worker(worker_env(cli_env, THREADLINE_FAULTS=json.dumps(faults)), log, "--concurrency", "2", *FAST_WORKER):
        wait_until(lambda: run_status(db_engine, run_id) in ("succeeded", "failed"), 120, f"faulty run\n{tail(log)}")
    assert run_status(db_engine, run_id) == "succeeded"  # 3 of 120 dead: under the failing share
    with session_scope(db_engine) as session:
        counters = session.get(Run, run_id).counters["embed"]
        assert counters["done"] + counters["skipped"] + counters["dead"] == counters["total"] == len(ids)
        assert counters["dead"] == len(permanent) and counters["retries"] == 2 * len(transient)
        letters = session.execute(select(DeadLetter).where(DeadLetter.run_id == run_id)).scalars().all()
        assert sorted(int(d.item) for d in letters) == sorted(permanent)
        assert {d.error_class for d in letters} == {"PermanentError"} and {d.stage for d in letters} == {"embed"}
        attempts = dict(
            session.execute(select(RunItem.conversation_id, RunItem.attempts).where(RunItem.run_id == run_id)).all()
        )
        assert all(attempts[i] == 3 for i in transient)  # failed twice, succeeded on the third attempt
        assert session.execute(select(func.count()).select_from(Embedding)).scalar_one() == len(ids) - len(permanent)
    listed = json.loads(run_cli(cli_env, "dlq", "list", "--run", str(run_id), "--json").stdout)
    assert len(listed) == len(permanent)
    view = json.loads(run_cli(cli_env, "runs", "show", str(run_id), "--json").stdout)
    assert view["dead_letters"] == len(permanent) and view["counters"]["embed"]["dead"] == len(permanent)

    # The fault is cleared (a worker without THREADLINE_FAULTS); retry the run's dead letters.
    assert json.loads(run_cli(cli_env, "dlq", "retry", "--run", str(run_id), "--json").stdout) == {
        "retried": len(permanent)
    }
    assert json.loads(run_cli(cli_env, "dlq", "retry", "--run", str(run_id), "--json").stdout) == {"retried": 0}
    with worker(worker_env(cli_env), log, "--concurrency", "2", *FAST_WORKER):
        wait_until(lambda: run_status(db_engine, run_id) in ("succeeded", "failed"), 120, f"retried run\n{tail(log)}")
    assert run_status(db_engine, run_id) == "succeeded"
    assert item_states(db_engine, run_id, "embed") == {"done": len(ids)}
    with session_scope(db_engine) as session:
        counters = session.get(Run, run_id).counters["embed"]
        assert counters["done"] == len(ids) and counters["dead"] == 0
        assert session.execute(select(func.count()).select_from(Embedding)).scalar_one() == len(ids)
    assert json.loads(run_cli(cli_env, "dlq", "list", "--json").stdout) == []
    assert json.loads(run_cli(cli_env, "dlq", "purge", "--json").stdout) == {"purged": len(permanent)}


def test_exhausted_retries_dead_letter_and_fail_the_run_past_the_share(db_engine, tmp_path, monkeypatch):
    """Always-transient items die after THREADLINE_MAX_ITEM_ATTEMPTS; 20% dead > 10% share: failed."""
    ids = make_conversations(db_engine, tmp_path, 20)
    faults = {"stage": "sleep", "transient_share": 0.2, "transient_failures": 99, "seed": 3}
    doomed = [i for i in ids if FaultInjector(stage="sleep", transient_share=0.2, seed=3).is_transient_item(i)]
    assert doomed
    for name, value in {
        "THREADLINE_FAULTS": json.dumps(faults),
        "THREADLINE_MAX_ITEM_ATTEMPTS": "3",
        "THREADLINE_RETRY_BASE_DELAY_S": "0.05",
    }.items():
        monkeypatch.setenv(name, value)  # configuration read by the in-process worker, not patched code
    get_settings.cache_clear()
    with session_scope(db_engine) as session:
        run_id = create_run(session, phases=("sleep",), batch_size=5).id
    run = execute_run(db_engine, run_id)
    counters = run.counters["sleep"]
    assert counters["dead"] == len(doomed) and counters["done"] == len(ids) - len(doomed)
    assert counters["retries"] == 2 * len(doomed)
    expected = "failed" if len(doomed) / len(ids) > 0.1 else "succeeded"
    assert run.status == expected
    with session_scope(db_engine) as session:
        letters = session.execute(select(DeadLetter).where(DeadLetter.run_id == run_id)).scalars().all()
        assert sorted(int(d.item) for d in letters) == sorted(doomed)
        assert all(d.attempts == 3 and d.error_class == "TransientError" for d in letters)
        assert all(d.error_message.startswith("injected transient") for d in letters)


def _one_dead_letter(db_engine, tmp_path, monkeypatch) -> tuple[int, int]:
    ids = make_conversations(db_engine, tmp_path, 10)
    monkeypatch.setenv("THREADLINE_FAULTS", json.dumps({"stage": "sleep", "permanent": [ids[4]]}))
    with session_scope(db_engine) as session:
        run_id = create_run(session, phases=("sleep",), batch_size=5).id
    assert execute_run(db_engine, run_id).status == "succeeded"  # 1 of 10 dead: the count is shown
    monkeypatch.delenv("THREADLINE_FAULTS")
    with session_scope(db_engine) as session:
        letter_id = session.execute(select(DeadLetter.id).where(DeadLetter.run_id == run_id)).scalar_one()
    return run_id, letter_id


def _requeues(db_engine, run_id: int) -> int:
    with session_scope(db_engine) as session:
        return session.execute(
            text(
                "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'threadline.advance' AND (args->>'run_id')::bigint = :r "
                "AND (args->>'generation')::int > 0"
            ),
            {"r": run_id},
        ).scalar_one()


def test_two_concurrent_cli_retries_of_one_item_enqueue_it_once(db_engine, cli_env, tmp_path, monkeypatch):
    run_id, letter_id = _one_dead_letter(db_engine, tmp_path, monkeypatch)
    command = [*threadline_command(), "dlq", "retry", str(letter_id), "--json"]
    processes = [
        subprocess.Popen(command, env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in processes]
    results = sorted(json.loads(out)["retried"] for out, _ in outputs)
    assert results == [0, 1], outputs
    assert sorted(p.returncode for p in processes) == [0, 1]
    assert _requeues(db_engine, run_id) == 1
    with session_scope(db_engine) as session:
        run = session.get(Run, run_id)
        assert run.status == "running" and run.generation == 1
        assert item_states(db_engine, run_id, "sleep") == {"done": 9, "pending": 1}
    assert execute_run(db_engine, run_id).status == "succeeded"
    assert item_states(db_engine, run_id, "sleep") == {"done": 10}


def test_concurrent_retries_in_threads_exactly_one_wins(db_engine, tmp_path, monkeypatch):
    """Eight callers released together on one dead letter: one True, seven False, one re-enqueue."""
    run_id, letter_id = _one_dead_letter(db_engine, tmp_path, monkeypatch)
    barrier = threading.Barrier(8)
    results: list[bool] = []
    lock = threading.Lock()

    def attempt() -> None:
        with Session(db_engine) as session:
            barrier.wait()
            won = retry_dead_letter(session, letter_id)
            session.commit()
        with lock:
            results.append(won)

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(results) == [False] * 7 + [True]
    assert _requeues(db_engine, run_id) == 1


def test_item_whose_worker_died_on_every_attempt_is_dead_lettered(db_engine, tmp_path, monkeypatch):
    """A poison item (its worker was lost on each attempt) ends as a dead letter, not an endless loop."""
    ids = make_conversations(db_engine, tmp_path, 6)
    monkeypatch.setenv("THREADLINE_MAX_ITEM_ATTEMPTS", "3")
    get_settings.cache_clear()
    with session_scope(db_engine) as session:
        run_id = create_run(session, phases=("sleep",), batch_size=3).id
        # Three claims that never recorded a result: what three SIGKILLed attempts leave behind.
        session.execute(
            text("UPDATE run_items SET attempts = 3 WHERE run_id = :r AND conversation_id = :c"),
            {"r": run_id, "c": ids[1]},
        )
    run = execute_run(db_engine, run_id)
    assert run.status == "failed"  # 1 of 6 dead > 10%
    assert run.counters["sleep"]["dead"] == 1 and run.counters["sleep"]["done"] == 5
    with session_scope(db_engine) as session:
        letter = session.execute(select(DeadLetter).where(DeadLetter.run_id == run_id)).scalar_one()
        assert (letter.item, letter.error_class, letter.attempts) == (str(ids[1]), "WorkerLost", 4)
