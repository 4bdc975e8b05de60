"""Async rate limiter for requests and tokens per window, shared by every task of a process.

Why this exists: providers limit an account in requests/minute and tokens/minute, not in
"concurrent calls". A fixed concurrency either wastes budget (slow calls) or overshoots
it (fast calls). This limiter paces calls to exactly the configured budget:

* two token buckets (requests, tokens) refilled continuously at the budgeted rate, with a
  small burst so a cold start cannot dump a minute's budget in one second;
* callers estimate a call's tokens before sending it and reconcile with the reported
  `usage` afterwards (the bucket may go into debt; later callers then wait longer);
* AIMD on 429: the rate is halved (multiplicative decrease, at most once per
  `DECREASE_COOLDOWN_SECONDS`) and every successful call adds `ADDITIVE_INCREASE_STEP`
  back until the full budget is reached again; a 429's Retry-After holds every caller;
* provider headers (OpenAI style `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`)
  tighten the local view: a lower provider limit is adopted, and a provider "remaining"
  below our local level clamps the local bucket (other workers used the difference).

Several workers: the budget is *divided* by the number of live workers (see
`DividedBudget`): each process gets `1/n` of the configured limits, `n` coming from a
callable the integrator supplies (e.g. counting procrastinate worker heartbeats),
refreshed every `WORKER_COUNT_REFRESH_SECONDS`. We chose division over coordinating
every call through PostgreSQL because (1) a DB-coordinated bucket costs one row-locked
round trip per call on the hot path (10+ calls/s per worker) and serialises all workers
on one row; (2) the provider already is the shared source of truth: its remaining/reset
headers and 429s reflect all workers' usage, and both feed this limiter; (3) division
degrades safely: if the worker count is stale by one, AIMD and the headers absorb the
error. The cost is that an idle worker's share is unused until the next refresh.

The limiter is generic: a connector with "N requests per 10 s" uses
`RateLimit(requests=N, tokens=None, window_seconds=10)` and calls `observe()` or
`observe_remaining()` with whatever its provider reports.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from threadline.net.retry import parse_duration, parse_retry_after

logger = logging.getLogger(__name__)

BURST_SECONDS = 0.2  # s of budget per bucket: smooth pacing keeps a provider bucket from draining
MIN_RATE_FACTOR = 0.05  # fraction of budget AIMD may fall to: never stall completely
DECREASE_FACTOR = 0.5  # multiplicative decrease on 429: classic AIMD halving
ADDITIVE_INCREASE_STEP = 0.02  # budget fraction regained per successful call: ~25 calls to recover
DECREASE_COOLDOWN_SECONDS = 2.0  # s: one burst of 429s from in-flight calls halves only once
MAX_SLEEP_SLICE_SECONDS = 0.5  # s: waiters re-check often enough to see holds/limit changes
MAX_HOLD_SECONDS = 120.0  # s: cap on a provider-requested pause (bad headers cannot stall a run)
WORKER_COUNT_REFRESH_SECONDS = 15.0  # s between live-worker counts: cheap, follows scale-out
DEFAULT_WINDOW_SECONDS = 60.0  # s: providers state budgets per minute


@dataclass(frozen=True)
class RateLimit:
    """A provider budget: requests and (optionally) tokens per window of seconds."""

    requests: float
    tokens: float | None = None
    window_seconds: float = DEFAULT_WINDOW_SECONDS

    def __post_init__(self) -> None:
        if self.requests <= 0 or self.window_seconds <= 0:
            raise ValueError("requests and window_seconds must be positive")
        if self.tokens is not None and self.tokens <= 0:
            raise ValueError("tokens must be positive when given")


class BudgetShare(Protocol):
    """How much of the configured budget this process may use (0 < fraction <= 1)."""

    async def fraction(self) -> float:
        """Current share of the budget for this process."""
        ...


class WholeBudget:
    """A single process owns the whole budget (tests, `threadline run` with one worker)."""

    async def fraction(self) -> float:
        """Always the full budget."""
        return 1.0


WorkerCounter = Callable[[], int | Awaitable[int]]


class DividedBudget:
    """Divide the budget by the number of live workers, recounted periodically.

    `live_workers` may be sync or async; the integrator passes e.g. a query counting
    procrastinate workers with a recent heartbeat. Failures keep the last known count.
    """

    def __init__(
        self,
        live_workers: WorkerCounter,
        refresh_seconds: float = WORKER_COUNT_REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._live_workers = live_workers
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._count = 1
        self._checked_at = -math.inf

    async def fraction(self) -> float:
        """1 / live workers (at least one worker: this one)."""
        now = self._clock()
        if now - self._checked_at >= self._refresh_seconds:
            self._checked_at = now
            try:
                result = self._live_workers()
                if inspect.isawaitable(result):
                    result = await result
                self._count = max(1, int(result))
            except Exception:
                logger.warning("live worker count failed; keeping %d", self._count, exc_info=True)
        return 1.0 / self._count


class _Bucket:
    """Continuous token bucket; level may go negative (debt from under-estimates)."""

    def __init__(self, per_window: float, window_seconds: float, now: float) -> None:
        self.per_window = per_window
        self.window_seconds = window_seconds
        self.level = self.capacity(1.0)
        self.updated = now

    def rate(self, factor: float) -> float:
        """Refill per second at the given fraction of the budget."""
        return self.per_window * factor / self.window_seconds

    def capacity(self, factor: float) -> float:
        """Burst size: `BURST_SECONDS` of budget, but at least one unit."""
        return max(1.0, self.rate(factor) * BURST_SECONDS)

    def refill(self, now: float, factor: float) -> None:
        """Add budget for the elapsed time, up to capacity.

        A level already above capacity (credit from a call that used fewer tokens than
        estimated) is kept, not clipped: it is budget the provider never charged.
        """
        elapsed = max(0.0, now - self.updated)
        refilled = min(self.capacity(factor), self.level + elapsed * self.rate(factor))
        self.level = max(self.level, refilled)
        self.updated = now

    def clip(self, factor: float) -> None:
        """Drop budget above capacity: after a rate cut, old credit must not burst out."""
        self.level = min(self.level, self.capacity(factor))

    def wait_for(self, amount: float, factor: float) -> float:
        """Seconds until `amount` (capped at capacity, so huge calls still pass) is there."""
        need = min(amount, self.capacity(factor))
        if self.level >= need:
            return 0.0
        return (need - self.level) / self.rate(factor)


@dataclass(frozen=True)
class Permit:
    """What `acquire` charged, to be reconciled with the provider's usage afterwards."""

    tokens_estimated: int
    granted_at: float


@dataclass(frozen=True)
class LimiterStats:
    """Snapshot for logs and benchmarks."""

    rate_factor: float
    share: float
    requests_limit: float
    tokens_limit: float | None
    decreases: int
    granted: int


class RateLimiter:
    """Requests + tokens per window limiter; one instance per process, shared by all tasks."""

    def __init__(
        self,
        limit: RateLimit,
        share: BudgetShare | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._share: BudgetShare = share or WholeBudget()
        self._clock = clock
        now = clock()
        self._requests = _Bucket(limit.requests, limit.window_seconds, now)
        self._tokens = _Bucket(limit.tokens, limit.window_seconds, now) if limit.tokens is not None else None
        self._factor = 1.0
        self._fraction = 1.0
        self._hold_until = 0.0
        self._last_decrease = -math.inf
        self._decreases = 0
        self._granted = 0
        self._lock = asyncio.Lock()

    def _effective(self) -> float:
        return self._factor * self._fraction

    def _refill(self, now: float) -> None:
        factor = self._effective()
        self._requests.refill(now, factor)
        if self._tokens is not None:
            self._tokens.refill(now, factor)

    def _set_rate(self, factor: float | None = None, fraction: float | None = None) -> None:
        """Change AIMD factor or worker share; a lower rate also lowers the burst."""
        before = self._effective()
        self._factor = self._factor if factor is None else factor
        self._fraction = self._fraction if fraction is None else fraction
        if self._effective() < before:
            self._requests.clip(self._effective())
            if self._tokens is not None:
                self._tokens.clip(self._effective())

    async def acquire(self, tokens: int | Callable[[], int] = 0) -> Permit:
        """Wait until one request and `tokens` estimated tokens fit the budget, then take them.

        Waiters are served first-come first-served (the lock is held while waiting), so a
        large call cannot be starved by a stream of small ones. `tokens` may be a callable,
        evaluated when this caller reaches the head of the queue, so estimates that improve
        while callers queue (e.g. an average of observed usage) are used at grant time.
        """
        async with self._lock:
            fraction = await self._share.fraction()
            self._refill(self._clock())
            self._set_rate(fraction=fraction)
            if callable(tokens):
                tokens = tokens()
            while True:
                now = self._clock()
                self._refill(now)
                factor = self._effective()
                wait = max(0.0, self._hold_until - now, self._requests.wait_for(1.0, factor))
                if self._tokens is not None:
                    wait = max(wait, self._tokens.wait_for(float(tokens), factor))
                if wait <= 0.0:
                    break
                await asyncio.sleep(min(wait, MAX_SLEEP_SLICE_SECONDS))
            self._requests.level -= 1.0
            if self._tokens is not None:
                self._tokens.level -= float(tokens)
            self._granted += 1
            return Permit(tokens_estimated=tokens, granted_at=now)

    def reconcile(self, permit: Permit, actual_tokens: int | None) -> None:
        """Correct the token bucket by (actual - estimated) once `usage` is known."""
        if self._tokens is None or actual_tokens is None:
            return
        self._refill(self._clock())
        self._tokens.level -= float(actual_tokens - permit.tokens_estimated)

    def on_success(self) -> None:
        """Additive increase after a call the provider accepted."""
        self._refill(self._clock())
        self._factor = min(1.0, self._factor + ADDITIVE_INCREASE_STEP)

    def on_rate_limited(self, retry_after: float | None) -> None:
        """Multiplicative decrease after a 429, and hold everyone for Retry-After."""
        now = self._clock()
        self._refill(now)
        if now - self._last_decrease >= DECREASE_COOLDOWN_SECONDS:
            self._set_rate(factor=max(MIN_RATE_FACTOR, self._factor * DECREASE_FACTOR))
            self._last_decrease = now
            self._decreases += 1
            logger.info("rate limited: pacing at %.0f%% of budget", self._factor * 100)
        if retry_after is not None:
            self._hold_until = max(self._hold_until, now + min(retry_after, MAX_HOLD_SECONDS))

    def observe_remaining(
        self,
        kind: str,
        remaining: float | None,
        reset_seconds: float | None = None,
        limit: float | None = None,
    ) -> None:
        """Fold one provider report ("requests" or "tokens") into the local buckets.

        A provider limit below ours is adopted (configuration was too optimistic); a
        provider remaining below our level clamps the bucket (others used it); an
        exhausted budget holds callers until the time one unit needs to refill, or the
        reported reset, whichever comes first.
        """
        bucket = self._requests if kind == "requests" else self._tokens
        if bucket is None:
            return
        now = self._clock()
        self._refill(now)
        if limit is not None and 0 < limit < bucket.per_window:
            logger.info("provider %s limit %.0f is below configured; adopting it", kind, limit)
            bucket.per_window = limit
            bucket.level = min(bucket.level, bucket.capacity(self._effective()))
        if remaining is None:
            return
        share_of_remaining = remaining * self._fraction
        bucket.level = min(bucket.level, share_of_remaining)
        if remaining < 1:
            one_unit = 1.0 / bucket.rate(1.0)
            hold = one_unit if reset_seconds is None else min(one_unit, reset_seconds)
            self._hold_until = max(self._hold_until, now + min(hold, MAX_HOLD_SECONDS))

    def observe(self, status: int, headers: Mapping[str, str]) -> None:
        """Update from one response: OpenAI-style headers, AIMD on 429 or success.

        `headers` must be case-insensitive or lower-case (httpx.Headers is).
        """
        for kind in ("requests", "tokens"):
            remaining = _to_float(headers.get(f"x-ratelimit-remaining-{kind}"))
            limit = _to_float(headers.get(f"x-ratelimit-limit-{kind}"))
            reset = parse_duration(headers.get(f"x-ratelimit-reset-{kind}"))
            if remaining is not None or limit is not None:
                self.observe_remaining(kind, remaining, reset, limit)
        if status == 429:
            self.on_rate_limited(parse_retry_after(headers))
        elif 200 <= status < 300:
            self.on_success()

    def stats(self) -> LimiterStats:
        """Current pacing state (for logs and benchmark output)."""
        return LimiterStats(
            rate_factor=self._factor,
            share=self._fraction,
            requests_limit=self._requests.per_window,
            tokens_limit=self._tokens.per_window if self._tokens is not None else None,
            decreases=self._decreases,
            granted=self._granted,
        )


def _to_float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None
