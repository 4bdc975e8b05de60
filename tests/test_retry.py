"""The one outbound retry policy: backoff and jitter, server-requested waits, caps, the retrying helper."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest

from threadline.ai.llm.client import llm_retry_policy
from threadline.config import LLMSettings, get_settings
from threadline.engine.errors import backoff_delay_s
from threadline.net.retry import (
    Attempt,
    Jitter,
    RetryPolicy,
    backoff_s,
    call_with_retries,
    parse_duration,
    parse_reset,
    parse_retry_after,
    requested_wait_s,
)

NOW = 1_700_000_000.0  # a fixed Unix time for header arithmetic
SEEDS = range(20)  # enough draws to see both ends of each jitter interval
POLICY = RetryPolicy(attempts=4, base_s=0.5, cap_s=4.0, jitter=Jitter.FULL, max_requested_wait_s=30.0)


# ---- backoff --------------------------------------------------------------------------------
@pytest.mark.parametrize(("attempt", "ceiling"), [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 4.0), (60, 4.0)])
def test_full_jitter_stays_within_the_ceiling_of_each_attempt(attempt: int, ceiling: float) -> None:
    delays = [backoff_s(attempt, base_s=0.5, cap_s=4.0, jitter=Jitter.FULL, rng=random.Random(s)) for s in SEEDS]
    assert all(0.0 <= d <= ceiling for d in delays)
    assert min(delays) < ceiling * 0.25 and max(delays) > ceiling * 0.75  # the whole interval is used


@pytest.mark.parametrize(("attempt", "ceiling"), [(1, 2.0), (2, 4.0), (4, 16.0), (9, 300.0), (10_000, 300.0)])
def test_equal_jitter_stays_in_the_upper_half_of_each_ceiling(attempt: int, ceiling: float) -> None:
    delays = [backoff_s(attempt, base_s=2.0, cap_s=300.0, jitter=Jitter.EQUAL, rng=random.Random(s)) for s in SEEDS]
    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert len(set(delays)) == len(delays)  # jittered, not a constant


def test_a_seeded_rng_gives_the_same_delays() -> None:
    def series(seed: int) -> list[float]:
        rng = random.Random(seed)
        return [backoff_s(n, base_s=0.5, cap_s=8.0, jitter=Jitter.FULL, rng=rng) for n in range(1, 7)]

    assert series(7) == series(7)
    assert series(7) != series(8)


def test_engine_backoff_keeps_its_delays() -> None:
    """`backoff_delay_s` gives exactly what its former formula gave for the same RNG state."""
    limits = get_settings().engine
    for seed in SEEDS:
        for attempt in (0, 1, 2, 5, 12):
            for retry_after in (None, 0.5, 50.0, 10 * limits.max_retry_after_s):
                reference = random.Random(seed)
                ceiling = min(limits.retry_max_delay_s, 2.0 * (2 ** max(attempt - 1, 0)))
                expected = ceiling * reference.uniform(0.5, 1.0)
                if retry_after is not None:
                    expected = max(expected, min(retry_after, limits.max_retry_after_s))
                got = backoff_delay_s(attempt, 2.0, retry_after_s=retry_after, rng=random.Random(seed))
                assert got == expected


# ---- server-requested waits -----------------------------------------------------------------
def test_retry_after_in_seconds_milliseconds_and_http_dates() -> None:
    assert parse_retry_after({"Retry-After": "7"}, now=NOW) == 7.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "1"}, now=NOW) == 0.25  # ms wins
    assert parse_retry_after({"retry-after-ms": "soon", "retry-after": "2"}, now=NOW) == 2.0  # bad ms: fall back
    in_90_s = format_datetime(datetime.fromtimestamp(NOW + 90, tz=UTC), usegmt=True)
    assert parse_retry_after({"retry-after": in_90_s}, now=NOW) == pytest.approx(90.0)
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=NOW) == 0.0  # past: no wait
    assert parse_retry_after({"retry-after": "-3"}, now=NOW) == 0.0


@pytest.mark.parametrize("value", ["", "soon", "inf", "nan", "1e999", "Wed, 99 Foo 2015"])
def test_unparseable_retry_after_is_ignored(value: str) -> None:
    assert parse_retry_after({"retry-after": value}, now=NOW) is None
    assert parse_retry_after({"retry-after-ms": value}, now=NOW) is None


@pytest.mark.parametrize(("text", "seconds"), [("6m0s", 360.0), ("20ms", 0.02), ("1h2m3.5s", 3723.5), ("2.5", 2.5)])
def test_openai_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["inf", "nan", "5x", "1s2", "ms"])
def test_bad_durations_are_ignored(text: str) -> None:
    assert parse_duration(text) is None


def test_reset_is_an_epoch_a_number_of_seconds_or_a_duration() -> None:
    assert parse_reset(str(int(NOW) + 42), now=NOW) == 42.0  # GitHub, Intercom: Unix time
    assert parse_reset(str(int(NOW) - 5), now=NOW) == 0.0  # already reset
    assert parse_reset("17", now=NOW) == 17.0  # seconds until reset
    assert parse_reset("6m0s", now=NOW) == 360.0  # OpenAI duration
    assert parse_reset("later", now=NOW) is None


def test_requested_wait_comes_from_spent_budgets_only() -> None:
    github = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW) + 30)}
    assert requested_wait_s(github, now=NOW) == 30.0
    openai = {
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "2s",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "6m0s",
    }
    assert requested_wait_s(openai, now=NOW) == 360.0  # the later of the two spent budgets
    room_left = {**openai, "x-ratelimit-remaining-tokens": "1500"}
    assert requested_wait_s(room_left, now=NOW) == 2.0  # a budget with room left is no instruction to wait
    assert requested_wait_s({"x-ratelimit-remaining": "12", "x-ratelimit-reset": str(int(NOW) + 30)}, now=NOW) is None
    assert requested_wait_s({**github, "retry-after": "3"}, now=NOW) == 3.0  # Retry-After is the explicit answer
    assert requested_wait_s({}, now=NOW) is None


def test_policy_caps_requested_waits_and_never_waits_less_than_the_backoff() -> None:
    assert POLICY.wait_s(1, random.Random(1), requested_s=10_000.0) == 30.0  # a bad header cannot stall a job
    assert POLICY.wait_s(1, random.Random(1), requested_s=5.0) == 5.0
    backoff = POLICY.backoff_s(3, random.Random(1))
    assert POLICY.wait_s(3, random.Random(1), requested_s=0.0) == backoff
    assert POLICY.wait_s(3, random.Random(1)) == backoff
    assert all(POLICY.backoff_s(n, random.Random(n)) <= POLICY.cap_s for n in range(1, 50))


def test_retryable_statuses() -> None:
    empty = httpx.Headers()
    assert all(POLICY.retryable(s, empty) for s in (429, 500, 502, 503, 504, 599))
    assert not any(POLICY.retryable(s, empty) for s in (200, 400, 401, 403, 404, 408, 409, 410))
    llm = llm_retry_policy(LLMSettings())
    assert llm.retryable(408, empty) and llm.retryable(409, empty) and llm.retryable(501, empty)
    assert not llm.retryable(400, empty) and not llm.retryable(401, empty)
    # GitHub answers 403 for primary (budget spent) and secondary (Retry-After) limits; opt-in only.
    github = RetryPolicy(attempts=3, base_s=1.0, cap_s=60.0, forbidden_may_be_rate_limit=True)
    assert github.retryable(403, httpx.Headers({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1"}))
    assert github.retryable(403, httpx.Headers({"retry-after": "60"}))
    assert not github.retryable(403, httpx.Headers({"x-ratelimit-remaining": "4999"}))
    assert not POLICY.retryable(403, httpx.Headers({"retry-after": "60"}))


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0, base_s=1.0, cap_s=1.0)
    with pytest.raises(ValueError):
        RetryPolicy(attempts=1, base_s=-1.0, cap_s=1.0)


# ---- the retrying helper --------------------------------------------------------------------
Script = Iterable[int | BaseException | httpx.Response]


def scripted(script: Script) -> tuple[Callable[[], Awaitable[httpx.Response]], list[int]]:
    """A remote that answers with the given statuses (or raises the given errors), in order."""
    steps = iter(script)
    calls: list[int] = []

    async def send() -> httpx.Response:
        calls.append(len(calls) + 1)
        step = next(steps)
        if isinstance(step, BaseException):
            raise step
        return step if isinstance(step, httpx.Response) else httpx.Response(step)

    return send, calls


def run_with(script: Script, policy: RetryPolicy = POLICY, **kwargs: object) -> tuple[Attempt, list[int], list[float]]:
    send, calls = scripted(script)
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    last = asyncio.run(
        call_with_retries(send, policy=policy, rng=random.Random(3), sleep=sleep, clock=lambda: NOW, **kwargs)  # type: ignore[arg-type]
    )
    return last, calls, sleeps


def test_stops_after_the_policy_attempts_and_returns_the_last_one() -> None:
    last, calls, sleeps = run_with([503] * 10)
    assert calls == [1, 2, 3, 4] and last.number == 4
    assert last.status == 503 and last.retry and last.describe == "HTTP 503"
    assert len(sleeps) == 3  # no wait after the final attempt
    expected_rng = random.Random(3)
    assert sleeps == [POLICY.backoff_s(n, expected_rng) for n in (1, 2, 3)]  # one seeded draw per retry


def test_non_retryable_status_is_returned_at_once() -> None:
    last, calls, sleeps = run_with([404, 200])
    assert calls == [1] and sleeps == [] and last.status == 404 and not last.retry


def test_transport_errors_and_5xx_are_retried_until_success() -> None:
    last, calls, sleeps = run_with([httpx.ConnectTimeout("slow"), 502, 200])
    assert calls == [1, 2, 3] and last.status == 200 and last.number == 3 and len(sleeps) == 2


def test_a_transport_error_on_every_attempt_is_returned_not_raised() -> None:
    last, calls, _ = run_with([httpx.ReadTimeout("slow")] * 4)
    assert last.response is None and isinstance(last.error, httpx.ReadTimeout)
    assert last.describe == "ReadTimeout" and last.number == 4


def test_other_exceptions_propagate_without_retry() -> None:
    with pytest.raises(KeyError):
        run_with([KeyError("bug"), 200])


def test_extra_statuses_are_retried() -> None:
    policy = RetryPolicy(attempts=3, base_s=0.0, cap_s=0.0, extra_statuses=frozenset({409}))
    last, calls, _ = run_with([409, 409, 200], policy)
    assert calls == [1, 2, 3] and last.status == 200


def test_retry_after_sets_the_wait_capped() -> None:
    policy = RetryPolicy(attempts=3, base_s=0.01, cap_s=0.01, max_requested_wait_s=30.0)
    _, _, sleeps = run_with([httpx.Response(429, headers={"Retry-After": "12"}), 503, 200], policy)
    assert sleeps[0] == 12.0 and sleeps[1] <= 0.01
    _, _, sleeps = run_with([httpx.Response(503, headers={"Retry-After": "86400"}), 200], policy)
    assert sleeps == [30.0]
    reset = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 20)}
    _, _, sleeps = run_with([httpx.Response(429, headers=reset), 200], policy)
    assert sleeps == [20.0]


def test_the_observer_sees_every_attempt_before_the_wait_and_may_lengthen_it() -> None:
    seen: list[tuple[int, int | None]] = []

    def observe(attempt: Attempt) -> float | None:
        seen.append((attempt.number, attempt.status))
        return 9.0 if attempt.status == 429 else None

    policy = RetryPolicy(attempts=5, base_s=0.01, cap_s=0.01, max_requested_wait_s=60.0)
    last, _, sleeps = run_with([429, httpx.ConnectError("down"), 200], policy, observe=observe)
    assert seen == [(1, 429), (2, None), (3, 200)]
    assert sleeps[0] == 9.0 and sleeps[1] <= 0.01 and last.status == 200
