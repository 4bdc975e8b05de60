"""LLM facet throughput: our rate limiter vs a fixed concurrency of 20 calls, on the stand-in.

Both arms run the same facet stage (same client, retries and validation) over the same
banking77 queries against a fresh stand-in process limited to `--rpm` requests/minute
and `--tpm` tokens/minute with uniform `--latency-min`..`--latency-max` s latency.
"limiter" paces by the configured budget; "baseline" has no pacing, just at most
`--baseline-concurrency` calls in flight (the reference system's hard-coded 20).

Figures (achieved requests/minute vs budget, 429 share, lost items, tokens, cost, ratio
limiter/baseline measured in this one run) are written to
benchmarks/results/llm_throughput.json. Usage:

    .venv/bin/python benchmarks/llm_throughput.py --size 2000
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import logging
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from threadline.ai.llm import LLMClient, LLMSettings, ModelPrice, analyze_batch, summarize
from threadline.ai.llm.facets import ConversationInput, conversation_input

logger = logging.getLogger("benchmarks.llm_throughput")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "banking77" / "train.csv"
OUTPUT = ROOT / "benchmarks" / "results" / "llm_throughput.json"
API_KEY = "benchmark-key"  # the stand-in's bearer key; not a secret
KEY_ENV = "THREADLINE_BENCH_LLM_KEY"  # env var name the settings read the key from
STARTUP_TIMEOUT_SECONDS = 20.0  # s: the stand-in process imports and binds in ~2 s
STATS_TIMEOUT_SECONDS = 5.0  # s: the stand-in's counters answer instantly
CLIENT_TIMEOUT_SECONDS = 30.0  # s read timeout: far above the 4 s maximum latency
# Example price table: gpt-4o-mini list prices in USD per 1M tokens (input, output).
PRICES = {"gpt-4o-mini": ModelPrice(input_per_million=0.15, output_per_million=0.60)}
UNLIMITED_RPM = 1e9  # requests/minute for the baseline's limiter: effectively no pacing


@dataclass(frozen=True)
class Budget:
    """The stand-in's limits and latency for one benchmark."""

    rpm: float
    tpm: float
    latency_min: float
    latency_max: float
    burst_seconds: float


def load_conversations(size: int) -> list[ConversationInput]:
    """First `size` banking77 queries as one-message conversations."""
    if not DATA.exists():
        raise SystemExit(f"benchmark data missing: {DATA} (see /work/shared/data/README.md)")
    with DATA.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if size > len(rows):
        raise SystemExit(f"--size {size} exceeds the {len(rows)} rows of {DATA.name}")
    return [
        conversation_input(f"b77-{i}", [(f"b77-{i}-m1", "customer", row["text"])]) for i, row in enumerate(rows[:size])
    ]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_standin(budget: Budget, seed: int) -> tuple[subprocess.Popen[bytes], str]:
    """Start a fresh stand-in process (fresh buckets) and wait until it answers."""
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "threadline_testing.openai",
        "--port",
        str(port),
        "--api-key",
        API_KEY,
        "--requests-per-minute",
        str(budget.rpm),
        "--tokens-per-minute",
        str(budget.tpm),
        "--burst-seconds",
        str(budget.burst_seconds),
        "--latency-min-seconds",
        str(budget.latency_min),
        "--latency-max-seconds",
        str(budget.latency_max),
        "--seed",
        str(seed),
    ]
    process = subprocess.Popen(command, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/stats", timeout=1.0).status_code == 200:
                return process, base
        except httpx.HTTPError:
            time.sleep(0.2)
    process.terminate()
    raise SystemExit("stand-in did not start")


async def run_arm(
    name: str, base: str, budget: Budget, conversations: list[ConversationInput], concurrency: int
) -> dict[str, Any]:
    """Run one arm and return its figures."""
    limited = name == "limiter"
    settings = LLMSettings(
        base_url=f"{base}/v1",
        api_key_env=KEY_ENV,
        requests_per_minute=budget.rpm if limited else UNLIMITED_RPM,
        tokens_per_minute=budget.tpm if limited else None,
        timeout_seconds=CLIENT_TIMEOUT_SECONDS,
        prices=PRICES,
    )
    async with LLMClient.from_settings(settings, environ={KEY_ENV: API_KEY}) as client:
        start = time.monotonic()
        report = await analyze_batch(client, conversations, max_in_flight=None if limited else concurrency)
        elapsed = time.monotonic() - start
        limiter_stats = client.limiter.stats()
    async with httpx.AsyncClient(timeout=STATS_TIMEOUT_SECONDS) as http:
        server = (await http.get(f"{base}/stats")).json()
    usage = summarize(report.usages, PRICES)
    successful_calls = usage.total.calls - sum(1 for u in report.usages if u.input_tokens == 0 and u.output_tokens == 0)
    achieved_rpm = successful_calls / elapsed * 60.0
    requests = int(server.get("requests", 0))
    rate_limited = int(server.get("rate_limited", 0))
    return {
        "arm": name,
        "items": len(conversations),
        "done": len(report.done),
        "failed": len(report.failed),
        "skipped": len(report.skipped),
        "lost": len(conversations) - report.accounted,
        "elapsed_seconds": round(elapsed, 2),
        "items_per_minute": round(len(report.done) / elapsed * 60.0, 1),
        "achieved_requests_per_minute": round(achieved_rpm, 1),
        "request_budget_utilisation": round(achieved_rpm / budget.rpm, 4),
        "server_requests": requests,
        "server_429s": rate_limited,
        "share_429": round(rate_limited / requests, 4) if requests else 0.0,
        "input_tokens": usage.total.input_tokens,
        "output_tokens": usage.total.output_tokens,
        "tokens_per_minute": round((usage.total.input_tokens + usage.total.output_tokens) / elapsed * 60.0, 1),
        "token_budget_utilisation": round(
            (usage.total.input_tokens + usage.total.output_tokens) / elapsed * 60.0 / budget.tpm,
            4,
        ),
        "cost_usd": round(usage.total.cost, 6),
        "limiter_decreases": limiter_stats.decreases if limited else None,
    }


def main(argv: list[str] | None = None) -> None:
    """Run the arms in sequence, each against a fresh stand-in, and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size", type=int, default=2000, help="conversations per arm")
    parser.add_argument("--rpm", type=float, default=600.0)
    parser.add_argument("--tpm", type=float, default=200_000.0)
    parser.add_argument("--latency-min", type=float, default=1.0)
    parser.add_argument("--latency-max", type=float, default=4.0)
    parser.add_argument(
        "--burst-seconds",
        type=float,
        default=60.0,
        help="provider bucket size in seconds of budget (OpenAI: 60)",
    )
    parser.add_argument("--baseline-concurrency", type=int, default=20)
    parser.add_argument("--arms", default="limiter,baseline")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    budget = Budget(args.rpm, args.tpm, args.latency_min, args.latency_max, args.burst_seconds)
    conversations = load_conversations(args.size)
    arms: dict[str, dict[str, Any]] = {}
    for name in args.arms.split(","):
        process, base = start_standin(budget, args.seed)
        try:
            arms[name] = asyncio.run(run_arm(name, base, budget, conversations, args.baseline_concurrency))
        finally:
            process.terminate()
            process.wait(timeout=10)
        print(json.dumps(arms[name]), flush=True)
    result: dict[str, Any] = {
        "benchmark": "llm_throughput",
        "command": "python benchmarks/llm_throughput.py " + " ".join(argv or sys.argv[1:]),
        "stand_in": vars(budget) | {"burst_seconds": args.burst_seconds},
        "data": "banking77 train.csv, first --size rows, one message each",
        "prices_usd_per_million": {m: p.model_dump() for m, p in PRICES.items()},
        "cpu_count": os.cpu_count(),
        "arms": arms,
    }
    if "limiter" in arms and "baseline" in arms:
        result["ratio_items_per_minute_limiter_to_baseline"] = round(
            arms["limiter"]["items_per_minute"] / arms["baseline"]["items_per_minute"], 3
        )
    if "limiter" in arms:
        lim = arms["limiter"]
        result["done_when"] = {
            "throughput_ge_0_95_of_request_budget": lim["request_budget_utilisation"] >= 0.95,
            "share_429_le_1_percent": lim["share_429"] <= 0.01,
            "zero_lost_items": lim["lost"] == 0 and lim["done"] + lim["failed"] == lim["items"],
        }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k != "arms"}, indent=2))


if __name__ == "__main__":
    main()
