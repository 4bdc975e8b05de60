"""The limiter against a real (stand-in) provider: saturate the budget without 429 storms."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from llm_helpers import RunningStandin, client_for

from threadline.ai.llm import analyze_batch
from threadline.ai.llm.client import llm_rate_limit
from threadline.ai.llm.facets import conversation_input
from threadline.ai.ratelimit import BURST_SECONDS, DividedBudget, RateLimiter

RPM = 1_200  # requests/minute of the stand-in: 20/s keeps the test at a few seconds
ITEMS = 120  # conversations: ~6 s at the budget


def _conversations(prefix: str, count: int) -> list:
    return [
        conversation_input(f"{prefix}{i}", [(f"m{i}", "customer", f"Card {i} was declined.")]) for i in range(count)
    ]


def _strict_standin(factory: Callable[..., RunningStandin]) -> RunningStandin:
    # One second of burst (OpenAI allows a minute): any overshoot shows up as 429s.
    return factory(
        requests_per_minute=RPM,
        tokens_per_minute=10_000_000,
        burst_seconds=1.0,
        latency_min_seconds=0.05,
        latency_max_seconds=0.2,
    )


@pytest.mark.slow
def test_single_worker_uses_the_budget_without_429s(
    standin_factory: Callable[..., RunningStandin],
) -> None:
    server = _strict_standin(standin_factory)

    async def run() -> float:
        async with client_for(server, requests_per_minute=RPM) as client:
            start = time.monotonic()
            report = await analyze_batch(client, _conversations("c", ITEMS))
            elapsed = time.monotonic() - start
        assert len(report.done) == ITEMS
        return elapsed

    elapsed = asyncio.run(run())
    # After a small burst everything is paced at 20/s: the budget is used, not exceeded.
    expected = (ITEMS - RPM / 60 * BURST_SECONDS) / (RPM / 60)
    assert expected * 0.95 <= elapsed <= expected * 1.25
    assert server.state.counters["rate_limited"] <= ITEMS * 0.01


@pytest.mark.slow
def test_two_workers_dividing_the_budget_stay_within_it(
    standin_factory: Callable[..., RunningStandin],
) -> None:
    server = _strict_standin(standin_factory)

    async def worker(prefix: str) -> int:
        client = client_for(server, requests_per_minute=RPM)
        # Each worker is configured with the account's full budget and divides it by 2.
        client.limiter = RateLimiter(llm_rate_limit(client.settings), share=DividedBudget(lambda: 2))
        async with client:
            report = await analyze_batch(client, _conversations(prefix, ITEMS // 2))
        return len(report.done)

    async def run() -> float:
        start = time.monotonic()
        done = await asyncio.gather(worker("a"), worker("b"))
        assert sum(done) == ITEMS
        return time.monotonic() - start

    elapsed = asyncio.run(run())
    expected = (ITEMS - RPM / 60 * BURST_SECONDS) / (RPM / 60)
    assert elapsed >= expected * 0.95  # never faster than the account's budget allows
    assert server.state.counters["rate_limited"] <= ITEMS * 0.05


@pytest.mark.slow
def test_overconfigured_budget_recovers_from_429s_via_headers(
    standin_factory: Callable[..., RunningStandin],
) -> None:
    # The account really allows 60/min with a 2-request burst; we claim 6,000/min.
    server = standin_factory(requests_per_minute=60, burst_seconds=2.0)
    items = 5

    async def run() -> None:
        async with client_for(server, requests_per_minute=6_000, max_attempts=5) as client:
            report = await analyze_batch(client, _conversations("o", items))
            stats = client.limiter.stats()
        assert len(report.done) == items and not report.failed
        assert stats.requests_limit == 60  # adopted from x-ratelimit-limit-requests
        assert stats.decreases >= 1  # AIMD reacted to the 429s

    asyncio.run(run())
    counters = server.state.counters
    assert counters["rate_limited"] >= 1  # the 429s happened and were absorbed
    assert counters["admitted"] == items
