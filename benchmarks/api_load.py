"""HTTP API latency under load, idle and during a 10,000-conversation run, measured in one process run.

Steps (all on loopback, against a fresh embedded database in a temporary THREADLINE_HOME):
1. import the synthetic sample and finish one run on it with a real `threadline worker`, so the
   story/theme lists have content;
2. import 10,000 synthetic single-message conversations built from banking77's train.csv
   (created_at spread over 26 weeks);
3. idle window: 20 concurrent httpx async clients call list endpoints for IDLE_WINDOW_S;
4. start a run over the 10,000 conversations through the API, with a worker process, and load
   the list endpoints again for LOAD_WINDOW_S while it runs (closed loop: each client sends its
   next request as soon as the last one is answered, the worst case), then for PACED_WINDOW_S
   with PACED_THINK_S between a client's requests; then stop the run. The run's state is
   recorded at the end of each window: the target (closed-loop list p95 < P95_TARGET_MS, no
   errors) counts only if the run was still going when the closed-loop window ended.
Figures (p50/p95/p99/max per endpoint and overall, for both windows, and their ratios; CPU per
request of the server, of PostgreSQL and of this load generator) go to
benchmarks/results/api_load.json.

    .venv/bin/python benchmarks/api_load.py [--clients 20] [--load-seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
BANKING = REPO.parent / "shared" / "data" / "banking77" / "train.csv"
SAMPLE = REPO / "examples" / "conversations.jsonl"
RESULTS = REPO / "benchmarks" / "results" / "api_load.json"
CACHE = Path("/tmp/threadline-cache")

CONVERSATIONS = 10_000  # conversations in the loaded run: the scale
CLIENTS = 20  # concurrent clients: the figure
IDLE_WINDOW_S = 20.0  # seconds of baseline load with no run
LOAD_WINDOW_S = 60.0  # seconds of load during the run: bounded so the benchmark ends in minutes
PACED_WINDOW_S = 30.0  # seconds of paced load during the run
PACED_THINK_S = 0.5  # seconds a paced client waits between requests (mean): a dashboard user, not a flood
P95_TARGET_MS = 200.0  # ms: the acceptance bound for list endpoints during a run
SPREAD_WEEKS = 26  # weeks the synthetic conversations' created_at cover: gives trends something to show
SERVER_START_TIMEOUT_S = 60.0  # seconds for the server to answer /health
SAMPLE_RUN_TIMEOUT_S = 600.0  # seconds for the 310-conversation warm-up run on a shared machine
RUN_START_TIMEOUT_S = 120.0  # seconds for the big run to leave `queued`
ACTIVE_RUN_STATUSES = ("running", "stopping")  # a window measured "during the run" must end in one of these
HTTP_TIMEOUT = httpx.Timeout(
    connect=5.0, read=30.0, write=5.0, pool=30.0
)  # seconds: loopback; generous read to record slow answers instead of failing

LIST_ENDPOINTS = [
    ("conversations", "/api/conversations?limit=50"),
    ("conversations_page_20", "/api/conversations?limit=50&offset=1000"),
    ("conversations_search", "/api/conversations?limit=50&q=card%20payment"),
    ("stories", "/api/stories?limit=50"),
    ("themes", "/api/themes?limit=50"),
    ("runs", "/api/runs?limit=20"),
    ("dead_letters", "/api/dead-letters?limit=50"),
    ("sources", "/api/sources"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def synthetic_csv(path: Path, count: int) -> Path:
    """banking77 rows as single-message conversations, created_at spread over SPREAD_WEEKS."""
    start = datetime(2026, 5, 1, tzinfo=UTC)
    span_s = SPREAD_WEEKS * 7 * 86400
    rng = random.Random(77)
    with BANKING.open(newline="", encoding="utf-8") as src, path.open("w", newline="", encoding="utf-8") as dst:
        writer = csv.writer(dst)
        writer.writerow(["conversation_id", "created_at", "text"])
        for i, row in enumerate(csv.DictReader(src)):
            if i >= count:
                break
            when = start + timedelta(seconds=rng.randrange(span_s))
            writer.writerow([f"b77-{i}", when.isoformat(), row["text"]])
    return path


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered), 1),
        "p95_ms": round(pick(0.95), 1),
        "p99_ms": round(pick(0.99), 1),
        "max_ms": round(ordered[-1], 1),
    }


def cpu_seconds(pid: int | None, *, exited_children: bool = False) -> float:
    """User + system CPU seconds of a process and its live children (uvicorn's workers, PostgreSQL's backends).

    With `exited_children`, also what its children that have exited used (PostgreSQL's
    backends of closed connections, reaped by the postmaster).
    """
    import psutil

    if pid is None:
        return 0.0
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += times.user + times.system
            if exited_children and process is root:
                total += times.children_user + times.children_system
        except psutil.NoSuchProcess:
            continue
    return total


def postmaster_pid(pgdata: Path) -> int | None:
    """The embedded PostgreSQL's postmaster (first line of postmaster.pid), or None for an external server."""
    try:
        return int((pgdata / "postmaster.pid").read_text(encoding="ascii").split()[0])
    except (OSError, ValueError, IndexError):
        return None


async def load(
    base: str,
    token: str,
    clients: int,
    seconds: float,
    extra: list[tuple[str, str]],
    server_pid: int,
    think_s: float = 0.0,
    database_pid: int | None = None,
) -> dict:
    """`clients` concurrent clients, each with its own httpx.AsyncClient, for `seconds`.

    Also records CPU per request of the server processes, of PostgreSQL (all its processes,
    so during a run it includes the run's own database work) and of this load generator: on
    a shared machine the latency figures depend on what else runs, the CPU cost much less.
    """
    endpoints = LIST_ENDPOINTS + extra
    latencies: dict[str, list[float]] = {name: [] for name, _ in endpoints}
    errors: dict[str, int] = {}
    deadline = time.monotonic() + seconds

    async def client(index: int) -> None:
        rng = random.Random(index)
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=HTTP_TIMEOUT) as http:
            while time.monotonic() < deadline:
                name, path = rng.choice(endpoints)
                started = time.perf_counter()
                try:
                    response = await http.get(path)
                    ok = response.status_code == 200
                except httpx.HTTPError as exc:
                    ok, response = False, exc
                elapsed = (time.perf_counter() - started) * 1000
                if ok:
                    latencies[name].append(elapsed)
                else:
                    key = f"{name}: {getattr(response, 'status_code', type(response).__name__)}"
                    errors[key] = errors.get(key, 0) + 1
                if think_s:
                    await asyncio.sleep(think_s * (0.5 + rng.random()))  # jittered so clients do not march in step

    load_before = os.getloadavg()[0]
    server_cpu, own_cpu = cpu_seconds(server_pid), time.process_time()
    database_cpu = cpu_seconds(database_pid, exited_children=True)
    await asyncio.gather(*(client(i) for i in range(clients)))
    server_cpu, own_cpu = cpu_seconds(server_pid) - server_cpu, time.process_time() - own_cpu
    database_cpu = cpu_seconds(database_pid, exited_children=True) - database_cpu
    load_after = os.getloadavg()[0]
    all_values = [v for values in latencies.values() for v in values]
    done = max(len(all_values), 1)
    return {
        "server_cpu_ms_per_request": round(1000 * server_cpu / done, 2),
        "database_cpu_ms_per_request": round(1000 * database_cpu / done, 2) if database_pid else None,
        "load_generator_cpu_ms_per_request": round(1000 * own_cpu / done, 2),
        "seconds": seconds,
        "think_s": think_s,
        "machine_load_1min": [round(load_before, 2), round(load_after, 2)],  # shared machine: context for the figures
        "requests": len(all_values),
        "requests_per_s": round(len(all_values) / seconds, 1),
        "errors": errors,
        "overall": percentiles(all_values),
        "endpoints": {name: percentiles(values) for name, values in latencies.items()},
    }


def run_state(http: httpx.Client, run_id: int) -> dict:
    """Status, phase and progress of a run now."""
    view = http.get(f"/api/runs/{run_id}").json()
    return {"status": view["status"], "phase": view["phase"], "progress": view["progress"]}


def wait_for(predicate, timeout: float, what: str, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out waiting for {what}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--load-seconds", type=float, default=LOAD_WINDOW_S)
    parser.add_argument("--idle-seconds", type=float, default=IDLE_WINDOW_S)
    parser.add_argument("--conversations", type=int, default=CONVERSATIONS)
    parser.add_argument("--server-workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not BANKING.is_file():
        sys.stderr.write(f"benchmark data not found: {BANKING} (expected ../shared/data beside the repository)\n")
        return 2
    home = Path(tempfile.mkdtemp(prefix="threadline-apiload-"))
    os.environ["THREADLINE_HOME"] = str(home)
    os.environ.pop("THREADLINE_DATABASE_URL", None)

    from sqlalchemy import func, select, text

    from threadline.config import get_settings
    from threadline.connectors.files.importer import import_file
    from threadline.connectors.files.readers import CsvColumns
    from threadline.db.engine import get_engine, session_scope
    from threadline.db.models import Conversation
    from threadline.server.tokens import create_token

    figures: dict = {
        "clients": args.clients,
        "conversations": args.conversations,
        "p95_target_ms": P95_TARGET_MS,
        "cpu_count": os.cpu_count(),
        "server_workers": args.server_workers,
        "timings_s": {},
    }
    engine = get_engine()
    url = engine.url.render_as_string(hide_password=False)
    env = dict(os.environ, THREADLINE_DATABASE_URL=url, THREADLINE_HOME=str(home), HF_HUB_OFFLINE="1")
    with session_scope(engine) as session:
        token = create_token(session, "api-load")

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "threadline.app:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(args.server_workers),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=env,
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "threadline.cli.main", "worker", "--concurrency", "1"],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=HTTP_TIMEOUT) as http:

            def healthy() -> bool:
                try:
                    return http.get("/health").status_code == 200
                except httpx.HTTPError:
                    return False

            wait_for(healthy, SERVER_START_TIMEOUT_S, "the server", 0.2)

            t = time.perf_counter()
            import_file(engine, SAMPLE, source_name="demo")
            sample_run = http.post("/api/runs", json={"source": "demo"}).json()["id"]
            wait_for(
                lambda: http.get(f"/api/runs/{sample_run}").json()["status"] == "succeeded",
                SAMPLE_RUN_TIMEOUT_S,
                "the sample run",
            )
            figures["timings_s"]["sample_import_and_run"] = round(time.perf_counter() - t, 1)

            CACHE.mkdir(parents=True, exist_ok=True)
            path = synthetic_csv(CACHE / f"banking77-{args.conversations}.csv", args.conversations)
            t = time.perf_counter()
            result = import_file(
                engine,
                path,
                source_name="banking77",
                file_format="csv",
                columns=CsvColumns(text="text", conversation_id="conversation_id", created_at="created_at"),
            )
            figures["timings_s"]["import_10k"] = round(time.perf_counter() - t, 1)
            figures["imported"] = result.stats.inserted
            with (
                engine.connect() as conn
            ):  # what autovacuum does shortly after a bulk import; without it plans are guesses
                conn.execute(text("ANALYZE conversations, messages"))
                conn.commit()
            with session_scope(engine) as session:
                figures["conversations_in_database"] = session.execute(
                    select(func.count()).select_from(Conversation)
                ).scalar_one()

            database = postmaster_pid(get_settings().embedded_pgdata)
            figures["idle"] = asyncio.run(
                load(base, token, args.clients, args.idle_seconds, [], server.pid, database_pid=database)
            )

            run = http.post("/api/runs", json={"source": "banking77"}).json()
            run_id = run["id"]
            figures["run"] = {"id": run_id, "conversations": run["conversations"]}
            wait_for(
                lambda: http.get(f"/api/runs/{run_id}").json()["status"] == "running",
                RUN_START_TIMEOUT_S,
                "the run to start",
                0.2,
            )
            before = http.get(f"/api/runs/{run_id}").json()
            extra = [("run_show", f"/api/runs/{run_id}"), ("overview", "/api/overview")]
            figures["during_run"] = asyncio.run(
                load(base, token, args.clients, args.load_seconds, extra, server.pid, database_pid=database)
            )
            figures["during_run"]["run_at_end"] = run_state(
                http, run_id
            )  # the window counts only if the run outlasted it
            figures["during_run_paced"] = asyncio.run(
                load(
                    base,
                    token,
                    args.clients,
                    PACED_WINDOW_S,
                    extra,
                    server.pid,
                    think_s=PACED_THINK_S,
                    database_pid=database,
                )
            )
            figures["during_run_paced"]["run_at_end"] = after = run_state(http, run_id)
            figures["run"].update(
                status_before=before["status"],
                progress_before=before["progress"],
                phase_before=before["phase"],
                status_after=after["status"],
                progress_after=after["progress"],
                phase_after=after["phase"],
            )
            http.post(f"/api/runs/{run_id}/stop")
    finally:
        for process in (worker, server):
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        engine.dispose()

    idle, busy = figures["idle"]["overall"], figures["during_run"]["overall"]
    figures["ratios"] = {
        "p95_during_run_over_idle": round(busy["p95_ms"] / idle["p95_ms"], 2) if idle.get("p95_ms") else None,
        "p50_during_run_over_idle": round(busy["p50_ms"] / idle["p50_ms"], 2) if idle.get("p50_ms") else None,
    }
    list_names = {name for name, _ in LIST_ENDPOINTS}
    for window in ("during_run", "during_run_paced"):
        p95s = [e["p95_ms"] for name, e in figures[window]["endpoints"].items() if name in list_names and e.get("n")]
        figures[f"{window}_list_p95_max_ms"] = max(p95s)
    # The target is the closed-loop window's: it counts only if the run was still going when that window ended.
    # (The paced window that follows is reported with the run's state at its end; a fast run may finish during it.)
    figures["meets_target"] = (
        figures["during_run_list_p95_max_ms"] < P95_TARGET_MS
        and figures["during_run"]["run_at_end"]["status"] in ACTIVE_RUN_STATUSES
        and not figures["during_run"]["errors"]
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    summary = ("ratios", "during_run_list_p95_max_ms", "during_run_paced_list_p95_max_ms", "meets_target", "run")
    sys.stdout.write(json.dumps({k: figures[k] for k in summary}, indent=2) + "\n")
    return 0 if figures["meets_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
