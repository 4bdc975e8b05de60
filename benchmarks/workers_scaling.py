"""Scale-out benchmark: 1 vs 2 `threadline worker` processes on an I/O-bound stage.

The `sleep` stage simulates a provider call of SLEEP_MS per batch (I/O-bound: the worker
thread waits, the CPU idles). Throughput = items / (run finished_at - run created_at),
both database timestamps, measured with the workers already started (model-free workers
start in a few seconds; that start is not part of a run). Engine overhead = the same
items with zero latency on one worker: the wall time per item and per batch job that
procrastinate plus Threadline's bookkeeping (claim, transitions, counters) cost.
All figures come from one invocation. Writes benchmarks/results/workers_scaling.json.

    .venv/bin/python benchmarks/workers_scaling.py [--items 800] [--batch-size 4] [--sleep-ms 500] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "workers_scaling.json"
RUN_TIMEOUT_S = 600  # seconds: a run that takes longer is a broken benchmark, not a slow one
WORKER_READY_TIMEOUT_S = 120  # seconds for worker processes to register with the database
DEFAULT_SLEEP_MS = 500.0  # milliseconds per simulated call: the fast end of an LLM request (they take 0.5-10 s)


def _workers_registered(engine) -> int:
    from sqlalchemy import text

    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM procrastinate_workers")).scalar_one()


def _import_items(engine, home: Path, count: int) -> None:
    """`count` one-message conversations (the `sleep` stage never reads their text)."""
    from threadline.connectors.files.importer import import_file

    path = home / "bench.jsonl"
    with path.open("w") as handle:
        for i in range(count):
            handle.write(json.dumps({"id": f"b-{i}", "messages": [{"author": "customer", "text": f"item {i}"}]}) + "\n")
    result = import_file(engine, path, source_name="bench")
    if not result.ok:
        raise RuntimeError(f"import failed: {result.report.problems[:3]}")


def _start_workers(count: int, concurrency: int, env: dict[str, str], log_dir: Path) -> list[subprocess.Popen]:
    processes = []
    for index in range(count):
        log = (log_dir / f"worker-{count}-{index}.log").open("ab")
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "threadline.cli.main", "worker", "--concurrency", str(concurrency)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    return processes


def _stop_workers(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _measure(
    engine,
    *,
    workers: int,
    concurrency: int,
    items: int,
    batch_size: int,
    sleep_ms: float,
    env: dict[str, str],
    log_dir: Path,
) -> dict:
    """One run of the `sleep` stage with `workers` processes; returns its figures."""
    from sqlalchemy import func, select

    from threadline.db.engine import session_scope
    from threadline.db.models import Run, RunItem
    from threadline.engine.runs import create_run, wait_for_run

    processes = _start_workers(workers, concurrency, env, log_dir)
    try:
        deadline = time.monotonic() + WORKER_READY_TIMEOUT_S
        while _workers_registered(engine) < workers:
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                raise RuntimeError(f"workers did not start; see {log_dir}")
            time.sleep(0.2)
        with session_scope(engine) as session:
            run_id = create_run(session, phases=("sleep",), batch_size=batch_size, options={"sleep_ms": sleep_ms}).id
        run = wait_for_run(engine, run_id, RUN_TIMEOUT_S, poll_s=0.1)
        if run.status != "succeeded":
            raise RuntimeError(f"run {run_id} ended {run.status}")
        with session_scope(engine) as session:
            run = session.get(Run, run_id)
            elapsed = (run.finished_at - run.created_at).total_seconds()
            done = run.counters["sleep"]["done"]
            first_start, last_finish = session.execute(
                select(func.min(RunItem.started_at), func.max(RunItem.finished_at)).where(RunItem.run_id == run_id)
            ).one()
            to_first_item = (first_start - run.created_at).total_seconds()
            after_last_item = (run.finished_at - last_finish).total_seconds()
    finally:
        _stop_workers(processes)
    jobs = -(-items // batch_size)
    return {
        "workers": workers,
        "concurrency_per_worker": concurrency,
        "items": done,
        "batch_jobs": jobs,
        "sleep_ms_per_batch": sleep_ms,
        "elapsed_s": round(elapsed, 3),
        "items_per_s": round(done / elapsed, 2),
        "ideal_elapsed_s": round(jobs * sleep_ms / 1000 / (workers * concurrency), 3),
        "enqueue_to_first_item_s": round(to_first_item, 3),
        "last_item_to_run_end_s": round(after_last_item, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=800)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--sleep-ms", type=float, default=DEFAULT_SLEEP_MS)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="threadline-bench-workers-"))
    os.environ["THREADLINE_HOME"] = str(home)
    os.environ.pop("THREADLINE_DATABASE_URL", None)
    os.environ.pop("THREADLINE_FAULTS", None)

    from threadline.config import get_settings
    from threadline.db.engine import get_engine, resolve_database_url

    engine = get_engine()
    url = resolve_database_url(get_settings())
    env = dict(os.environ, THREADLINE_DATABASE_URL=url, HF_HUB_OFFLINE="1")
    _import_items(engine, home, args.items)

    common = dict(items=args.items, batch_size=args.batch_size, env=env, log_dir=home)
    one = _measure(engine, workers=1, concurrency=args.concurrency, sleep_ms=args.sleep_ms, **common)
    two = _measure(engine, workers=2, concurrency=args.concurrency, sleep_ms=args.sleep_ms, **common)
    zero = _measure(engine, workers=1, concurrency=args.concurrency, sleep_ms=0.0, **common)
    zero_serial = _measure(engine, workers=1, concurrency=1, sleep_ms=0.0, **common)
    result = {
        "benchmark": "workers_scaling",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "one_worker": one,
        "two_workers": two,
        "throughput_ratio_2_vs_1": round(two["items_per_s"] / one["items_per_s"], 3),
        "zero_latency_one_worker": zero,
        "zero_latency_one_worker_serial": zero_serial,
        "engine_overhead_ms_per_item": round(1000 * zero["elapsed_s"] / zero["items"], 3),
        "engine_overhead_ms_per_batch_job_serial": round(
            1000 * zero_serial["elapsed_s"] / zero_serial["batch_jobs"], 3
        ),
        "note": "overhead per item = zero-latency wall time / items (batch size as given); "
        "per batch job = zero-latency wall time / jobs with one worker thread",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
