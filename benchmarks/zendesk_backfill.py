"""Benchmark: Zendesk backfill against the stand-in under uvicorn on loopback.

Defaults: 10,000 tickets with 1-6 comments each (public and private), the Enterprise plan's
700 requests/minute and the incremental export's 10 requests/minute, both with Zendesk's
60-second window scaled down 10x to 6 seconds (700 and 10 requests per 6 s), 5% injected 5xx
and 2% injected 429s, tickets changed while the client pages, some deleted and merged.
Reports missing/duplicate/stale tickets and the achieved request rate as a share of the allowed
account rate (measured over the full windows between the first and the last request), all from
one run, to benchmarks/results/zendesk_backfill.json.

    .venv/bin/python benchmarks/zendesk_backfill.py [--tickets 10000] [--per-minute 700] [--scale 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from threadline_testing.serve import serve
from threadline_testing.sinks import MemorySink
from threadline_testing.zendesk import Account, AccountSpec, StandinConfig, create_app

from threadline.connectors.zendesk.client import ExportSpacer, ZendeskClient, api_token_credentials
from threadline.connectors.zendesk.sync import ZendeskSync

ZENDESK_WINDOW_S = 60.0  # Zendesk's limits are per minute
EXPORT_PER_MINUTE = 10  # the incremental export's documented limit
TOKEN = "bench-token"
DEFAULT_OUTPUT = Path(__file__).parent / "results" / "zendesk_backfill.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=10_000)
    parser.add_argument("--per-minute", type=int, default=700, help="account limit (Enterprise: 700)")
    parser.add_argument("--scale", type=float, default=10.0, help="windows are 60 s divided by this")
    parser.add_argument("--error-5xx", type=float, default=0.05)
    parser.add_argument("--error-429", type=float, default=0.02)
    parser.add_argument("--mutations-per-page", type=int, default=3)
    parser.add_argument("--mutation-budget", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    window = ZENDESK_WINDOW_S / args.scale
    account = Account(AccountSpec(tickets=args.tickets, seed=args.seed, deleted=10, merged=10))
    config = StandinConfig(
        account=account,
        api_tokens=frozenset({TOKEN}),
        window_seconds=window,
        requests_per_window=args.per_minute,
        export_requests_per_window=EXPORT_PER_MINUTE,
        error_500_share=args.error_5xx,
        error_429_share=args.error_429,
        mutations_per_export_page=args.mutations_per_page,
        mutation_budget=args.mutation_budget,
        fault_seed=args.seed,
    )
    app = create_app(config)
    sink = MemorySink()
    started = time.monotonic()
    with serve(app) as base_url:

        async def go():
            async with ZendeskClient(
                api_token_credentials(config.email, TOKEN),
                base_url=base_url,
                export_spacer=ExportSpacer(EXPORT_PER_MINUTE, window),
            ) as client:
                report = await ZendeskSync(client, sink).run()
                return report, dict(client.stats)

        report, client_stats = asyncio.run(go())
    elapsed = time.monotonic() - started
    stats = app.state.stats

    live = {
        str(t): x.updated_at
        for t, x in account.tickets.items()
        if t not in account.deleted and t not in account.merged_into
    }
    got = {cid: int(sink.records[cid].updated_at.timestamp()) for cid in sink.live_ids()}
    windows = sorted(stats.per_window)
    full = windows[1:-1]  # the first and last windows are partial
    full_requests = sum(stats.per_window[w] for w in full)
    allowed_rps = args.per_minute / window
    achieved_rps = full_requests / (len(full) * window) if full else 0.0
    result = {
        "benchmark": "zendesk_backfill",
        "measured_at": datetime.now(UTC).isoformat(),
        "command": "python benchmarks/zendesk_backfill.py " + " ".join(sys.argv[1:]),
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "params": {
            **{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "window_seconds": window,
        },
        "correctness": {
            "tickets_live": len(live),
            "missing": len(set(live) - set(got)),
            "unexpected": len(set(got) - set(live)),
            "stale_versions": sum(1 for cid in set(live) & set(got) if got[cid] != live[cid]),
            "duplicate_writes": sink.duplicate_writes(),
            "deleted_or_merged_marked": len(sink.deleted),
            "dead_letters": len(sink.dead_letters),
            "mutations_during_paging": stats.mutations,
        },
        "rate": {
            "allowed_requests_per_second": round(allowed_rps, 2),
            "requests": stats.requests,
            "full_windows": len(full),
            "requests_in_full_windows": full_requests,
            "achieved_requests_per_second": round(achieved_rps, 2),
            "achieved_share_of_allowed": round(achieved_rps / allowed_rps, 3),
            "max_requests_in_a_window": max(stats.per_window.values()),
            "client_caused_429": stats.limit_429,
            "export_limit_429": stats.export_limit_429,
            "injected_429": stats.injected_429,
            "injected_5xx": stats.injected_500,
            "elapsed_seconds": round(elapsed, 1),
        },
        "report": report.counters(),
        "client": client_stats,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    logging.getLogger(__name__).warning("wrote %s", args.output)
    print(json.dumps({"correctness": result["correctness"], "rate": result["rate"]}, indent=2))  # noqa: T201 - a script's result
    return 0 if result["correctness"]["missing"] == 0 and result["correctness"]["duplicate_writes"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
