"""Benchmark: Intercom backfill against the stand-in under uvicorn on loopback.

Defaults follow issue 5: 10,000 conversations, 1,000 requests/minute enforced in 10-second
windows (166 per window), 5% injected 500s, 2% injected 429s, conversations updated while the
client pages. Reports missing/duplicate/stale conversations, the achieved request rate as a
share of the allowed rate, and 429s caused by the client versus injected ones, all measured in
one run, to benchmarks/results/intercom_backfill.json.

The client's own CPU time is measured with `time.thread_time()` around the event loop, which runs
in the main thread while the stand-in serves from its own thread (uvicorn), so the stand-in's CPU
is excluded; the sink (`MemorySink`) is included, as the real sink would run in the client's loop.
`--profile FILE` writes a cProfile of the client thread only (cProfile follows one thread).

    .venv/bin/python benchmarks/intercom_backfill.py [--conversations 10000] [--per-minute 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import logging
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from threadline_testing.intercom import StandinConfig, Workspace, WorkspaceSpec, create_app
from threadline_testing.serve import serve
from threadline_testing.sinks import MemorySink

from threadline.connectors.intercom.client import IntercomClient
from threadline.connectors.intercom.sync import IntercomSync

RESULTS = Path(__file__).resolve().parent / "results" / "intercom_backfill.json"
TOKEN = "benchmark-token"  # made up: the stand-in accepts it
SECONDS_PER_MINUTE = 60


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--conversations", type=int, default=10_000)
    p.add_argument("--per-minute", type=int, default=1_000, help="allowed requests per minute")
    p.add_argument("--window", type=int, default=10, help="rate-limit window in seconds (Intercom: 10)")
    p.add_argument("--error-500", type=float, default=0.05)
    p.add_argument("--error-429", type=float, default=0.02)
    p.add_argument("--slow-share", type=float, default=0.0)
    p.add_argument("--slow-seconds", type=float, default=0.5)
    p.add_argument("--mutations-per-page", type=int, default=3)
    p.add_argument("--mutation-budget", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", type=Path, default=RESULTS)
    p.add_argument("--profile", type=Path, default=None, help="write a cProfile of the client thread here")
    return p.parse_args(argv)


async def backfill(base_url: str, sink: MemorySink) -> tuple[dict, dict, float]:
    started = time.monotonic()
    async with IntercomClient(TOKEN, base_url=base_url) as client:
        report = await IntercomSync(client, sink).run()
    return report.__dict__, dict(client.stats), time.monotonic() - started


def run_client(base_url: str, sink: MemorySink, profile: Path | None) -> tuple[dict, dict, float, float]:
    """Run the backfill's event loop in this thread; also returns this thread's CPU seconds.

    `time.thread_time()` counts only the calling thread, so the stand-in's thread is excluded.
    """
    profiler = cProfile.Profile() if profile is not None else None
    cpu_started = time.thread_time()
    if profiler is not None:
        profiler.enable()
    try:
        report, client_stats, seconds = asyncio.run(backfill(base_url, sink))
    finally:
        if profiler is not None:
            profiler.disable()
    cpu_seconds = time.thread_time() - cpu_started
    if profiler is not None and profile is not None:
        profile.parent.mkdir(parents=True, exist_ok=True)
        profiler.dump_stats(str(profile))
    return report, client_stats, seconds, cpu_seconds


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    limit = args.per_minute * args.window // SECONDS_PER_MINUTE
    workspace = Workspace(
        WorkspaceSpec(conversations=args.conversations, seed=args.seed, deleted=10, huge_conversation_share=0.001)
    )
    config = StandinConfig(
        workspace=workspace,
        tokens=frozenset({TOKEN}),
        window_seconds=args.window,
        limit_per_window=limit,
        error_429_share=args.error_429,
        error_500_share=args.error_500,
        slow_share=args.slow_share,
        slow_seconds=args.slow_seconds,
        mutations_per_search_page=args.mutations_per_page,
        mutation_budget=args.mutation_budget,
        fault_seed=args.seed,
    )
    app = create_app(config)
    sink = MemorySink()
    with serve(app) as base_url:
        report, client_stats, seconds, client_cpu_seconds = run_client(base_url, sink, args.profile)
    stats = app.state.stats

    truth = {cid: c.updated_at for cid, c in workspace.conversations.items()}
    stored = {cid: int(sink.records[cid].updated_at.timestamp()) for cid in sink.live_ids()}
    windows = sorted(stats.per_window)
    full = windows[1:-1]  # the first and last windows are partial
    span = (stats.last_request_at or 0) - (stats.first_request_at or 0)
    allowed_rate = limit / args.window
    result = {
        "benchmark": "intercom_backfill",
        "measured_at": datetime.now(UTC).isoformat(),
        "command": "python benchmarks/intercom_backfill.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "params": {
            **{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "limit_per_window": limit,
        },
        "correctness": {
            "conversations_in_workspace": len(truth),
            "missing": len(set(truth) - set(stored)),
            "unexpected": len(set(stored) - set(truth)),
            "stale_versions": sum(1 for cid, t in truth.items() if stored.get(cid) not in (None, t)),
            "duplicate_writes": sink.duplicate_writes(),
            "deleted_marked": len(sink.deleted),
            "deleted_in_workspace": len(workspace.deleted),
            "dead_letters": len(sink.dead_letters),
            "mutations_during_paging": stats.mutations,
        },
        "rate": {
            "allowed_requests_per_second": allowed_rate,
            "requests": stats.requests,
            "seconds_first_to_last_request": round(span, 2),
            "achieved_requests_per_second": round(stats.requests / span, 3) if span else None,
            "achieved_share_of_allowed": round(stats.requests / span / allowed_rate, 4) if span else None,
            "full_windows": len(full),
            "mean_full_window_share": round(sum(stats.per_window[w] for w in full) / (len(full) * limit), 4)
            if full
            else None,
            "min_full_window_share": round(min(stats.per_window[w] for w in full) / limit, 4) if full else None,
            "max_requests_in_a_window": max(stats.per_window.values()) if windows else 0,
            "wall_seconds": round(seconds, 2),
        },
        "errors": {
            "429_caused_by_client": stats.limit_429,
            "429_injected": stats.injected_429,
            "500_injected": stats.injected_500,
            "client_retries": client_stats.get("retries"),
        },
        "client_cpu": {
            "seconds": round(client_cpu_seconds, 3),
            "requests_sent": client_stats.get("requests"),
            "client_cpu_ms_per_request": round(1000 * client_cpu_seconds / stats.requests, 3)
            if stats.requests
            else None,
            "profiled": args.profile is not None,
        },
        "requests_by_route": dict(stats.by_route),
        "sync_report": report,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    logging.getLogger("benchmark").warning(
        "wrote %s: %s",
        args.output,
        json.dumps({**result["correctness"], **result["rate"], **result["errors"], **result["client_cpu"]}),
    )
    ok = result["correctness"]["missing"] == 0 and result["correctness"]["duplicate_writes"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
