"""Rate limiter: pacing, token reconciliation, AIMD, provider headers, budget division."""

from __future__ import annotations

import asyncio
import time

import pytest

from threadline.ai.ratelimit import (
    BURST_SECONDS,
    DividedBudget,
    RateLimit,
    RateLimiter,
)
from threadline.net.retry import parse_duration, parse_retry_after


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("20ms", 0.02),
        ("1h2m3.5s", 3723.5),
        ("0s", 0.0),
        ("17.28s", 17.28),
        ("2.5", 2.5),
    ],
)
def test_parse_duration_openai_formats(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "abc", "5x", "1s2", "ms"])
def test_parse_duration_rejects_garbage(text: str) -> None:
    assert parse_duration(text) is None


def test_retry_after_prefers_milliseconds() -> None:
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "1"}) == 0.25
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    # An HTTP-date is honoured now (it used to be ignored); one in the past means "no wait".
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0


async def _acquire_all(limiter: RateLimiter, count: int, tokens: int = 0) -> float:
    start = time.monotonic()
    await asyncio.gather(*(limiter.acquire(tokens) for _ in range(count)))
    return time.monotonic() - start


def test_requests_are_paced_to_the_budget() -> None:
    # 50 requests per second: after the burst, the other requests need (100 - burst) / 50 s.
    limiter = RateLimiter(RateLimit(requests=50, window_seconds=1.0))
    elapsed = asyncio.run(_acquire_all(limiter, 100))
    expected = (100 - 50 * BURST_SECONDS) / 50
    assert expected * 0.95 <= elapsed <= expected * 1.3


def test_tokens_are_paced_and_reconciled() -> None:
    limiter = RateLimiter(RateLimit(requests=10_000, tokens=1_000, window_seconds=1.0))

    async def scenario() -> tuple[float, float]:
        permit = await limiter.acquire(100)
        # The call really used 1,000 tokens: the bucket goes into debt ...
        limiter.reconcile(permit, 1_000)
        start = time.monotonic()
        await limiter.acquire(100)
        debt_wait = time.monotonic() - start
        return debt_wait, limiter.stats().granted

    debt_wait, granted = asyncio.run(scenario())
    # ... so the next 100 tokens wait until the debt and their own 100 have refilled.
    burst = 1_000 * BURST_SECONDS
    expected = (100 - (burst - 1_000)) / 1_000
    assert expected * 0.9 <= debt_wait <= expected * 1.3
    assert granted == 2


def test_429_halves_rate_once_per_cooldown_and_successes_restore_it() -> None:
    limiter = RateLimiter(RateLimit(requests=600))
    limiter.observe(429, {"retry-after-ms": "10"})
    limiter.observe(429, {"retry-after-ms": "10"})  # same burst: no second halving
    assert limiter.stats().rate_factor == pytest.approx(0.5)
    assert limiter.stats().decreases == 1
    for _ in range(100):
        limiter.observe(200, {})
    assert limiter.stats().rate_factor == pytest.approx(1.0)


def test_retry_after_holds_every_caller() -> None:
    limiter = RateLimiter(RateLimit(requests=6_000))
    limiter.observe(429, {"retry-after-ms": "400"})
    elapsed = asyncio.run(_acquire_all(limiter, 3))
    assert 0.35 <= elapsed <= 1.0


def test_lower_provider_limit_is_adopted_and_exhaustion_holds() -> None:
    limiter = RateLimiter(RateLimit(requests=6_000, tokens=1_000_000))
    limiter.observe(
        200,
        {
            "x-ratelimit-limit-requests": "600",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "6m0s",
            "x-ratelimit-limit-tokens": "1000000",
            "x-ratelimit-remaining-tokens": "999000",
            "x-ratelimit-reset-tokens": "60ms",
        },
    )
    assert limiter.stats().requests_limit == 600
    # Remaining 0 at 600/min: the next request waits about one refill interval (0.1 s).
    elapsed = asyncio.run(_acquire_all(limiter, 1))
    assert 0.05 <= elapsed <= 0.5


def test_divided_budget_splits_rate_between_workers() -> None:
    calls: list[int] = []

    async def two_workers() -> int:
        calls.append(1)
        return 2

    limiter = RateLimiter(RateLimit(requests=100, window_seconds=1.0), share=DividedBudget(two_workers))
    # Share 1/2: 50 per second instead of 100, so 100 requests take twice as long.
    elapsed = asyncio.run(_acquire_all(limiter, 100))
    expected = (100 - 50 * BURST_SECONDS) / 50
    assert expected * 0.95 <= elapsed <= expected * 1.3
    assert limiter.stats().share == pytest.approx(0.5)
    assert len(calls) == 1  # counted once per refresh interval, not per call


def test_failing_worker_count_keeps_last_value() -> None:
    def broken() -> int:
        raise RuntimeError("db down")

    share = DividedBudget(broken, refresh_seconds=0.0)
    assert asyncio.run(share.fraction()) == 1.0
